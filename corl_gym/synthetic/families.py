"""The 17 families of the synthetic set: each maps (rng, level 1-5) to (problem text, exact answer in MATH style)."""

from __future__ import annotations

import random
from collections.abc import Callable

import sympy as sp

from corl_gym.synthetic.latex import (
    SYMBOL,
    decimal_or_fraction,
    evaluate,
    join_terms,
    nonzero,
    paren,
    poly_tex,
    tex,
)

Generator = Callable[[random.Random, int], tuple[str, str]]


# ---- families: each maps (rng, level 1-5) to (problem text, answer) -----------------------------------

def arithmetic(r: random.Random, L: int) -> tuple[str, str]:
    ops = [r.choice("+-*" if L >= 2 else "+-") for _ in range(L + 1)]
    values, shown = [], []
    for j in range(L + 2):  # factors of a product stay small so answers stay readable
        hi = 3 + 3 * L if "*" in (ops[j - 1] if j else "", ops[j] if j <= L else "") else 10 * L * L
        n = r.randint(-hi, hi) if L >= 3 else r.randint(1, hi)
        e = 1 if L < 4 or j != 1 else r.choice([2, 3])  # one power: one more step
        n = n if e == 1 else r.randint(2, 15 if e == 2 else 6) * r.choice([1, -1])
        values.append(sp.Integer(n) ** e)
        shown.append(paren(n) + (f"^{e}" if e > 1 else ""))
    expr = shown[0] + "".join(f" {SYMBOL[o]} {s}" for o, s in zip(ops, shown[1:]))
    return f"Compute ${expr}$.", tex(evaluate(values, ops))


def fractions(r: random.Random, L: int) -> tuple[str, str]:
    values = [sp.Rational(r.randint(1, 3 + 3 * L), r.randint(2, 4 + 3 * L)) for _ in range(L + 1)]
    values = [v if v.q != 1 else v + sp.Rational(1, 2) for v in values]
    ops = [r.choice("+-" if L <= 1 else "+-*" if L <= 3 else "+-*/") for _ in range(L)]
    expr = tex(values[0]) + "".join(f" {SYMBOL[o]} {tex(v)}" for o, v in zip(ops, values[1:]))
    return (f"Compute ${expr}$. Express your answer as a common fraction in lowest terms.",
            tex(evaluate(values, ops)))


def percentages(r: random.Random, L: int) -> tuple[str, str]:
    p = r.randrange(5, 100, 5) if L <= 2 else r.randint(1, 99)
    n = r.randint(1, 40) * 20 if L <= 2 else r.randint(2, 90) * r.choice([1, 4, 8])
    kind = r.choice(["of", "change"] if L >= 3 else ["of", "what"])
    if kind == "of":
        text, value = f"What is ${p}\\%$ of ${n}$?", sp.Rational(p, 100) * n
    elif kind == "what":
        text, value = f"What percent of ${n}$ is ${n * p // 100}$?", sp.Rational(100 * (n * p // 100), n)
    else:
        steps = [(r.choice(["increased", "decreased"]), r.randrange(5, 60, 5)) for _ in range(L - 1)]
        value = sp.Integer(n)
        for word, q in steps:
            value *= 1 + sp.Rational(q if word == "increased" else -q, 100)
        changes = ", then ".join(f"{w} by ${q}\\%$" for w, q in steps)
        text = f"A price of ${n}$ dollars is {changes}. What is the final price, in dollars?"
    return text, decimal_or_fraction(value)


def linear_equations(r: random.Random, L: int) -> tuple[str, str]:
    x = sp.Integer(r.randint(-5 * L, 5 * L)) if L <= 3 else sp.Rational(r.randint(-30, 30), r.randint(2, 9))
    a, b = nonzero(r, -3 * L, 3 * L), r.randint(-10 * L, 10 * L) if L >= 2 else r.randint(1, 20)
    c = r.choice([n for n in range(-3 * L, 3 * L + 1) if n != a]) if L >= 3 else 0
    if L == 4:  # a(x + k) = cx + d, more steps
        k = nonzero(r, -9, 9)
        return f"Solve for $x$: ${a}({poly_tex([1, k])}) = {poly_tex([c, a * (x + k) - c * x])}$.", tex(x)
    if L == 5:  # fractional coefficients
        p, q = r.sample(range(2, 10), 2)
        return (f"Solve for $x$: $\\frac{{x}}{{{p}}} {'+' if a > 0 else '-'} \\frac{{x}}{{{q}}} = "
                f"{tex(x / p + sp.sign(a) * x / q)}$.", tex(x))
    return f"Solve for $x$: ${poly_tex([a, b])} = {poly_tex([c, (a - c) * x + b])}$.", tex(x)


def surd_roots(a: int, b: int, c: int) -> list[str]:
    """Roots of ax^2 + bx + c (a > 0, irrational) as MATH writes them: `\\frac{-3 - \\sqrt{5}}{2}`."""
    k, surd = sp.sqrt(b * b - 4 * a * c).as_coeff_Mul()  # k * sqrt(m), m squarefree
    g = sp.igcd(b, int(k), 2 * a)
    head, k, den = -b // g, int(k) // g, 2 * a // g
    s = ("" if k == 1 else str(k)) + tex(surd)
    if head == 0:
        return [tex(-k * surd / den), tex(k * surd / den)]
    return [f"{head} - {s}" if den == 1 else f"\\frac{{{head} - {s}}}{{{den}}}",
            f"{head} + {s}" if den == 1 else f"\\frac{{{head} + {s}}}{{{den}}}"]


def quadratic_equations(r: random.Random, L: int) -> tuple[str, str]:
    a = 1 if L in (1, 4) else r.randint(2, 2 + L)
    tail = " Enter the solutions separated by commas."
    if L >= 4:
        while True:  # irrational roots: positive non-square discriminant
            b, c = r.randint(-6 * L, 6 * L), r.randint(-8 * L, 8 * L)
            if b * b - 4 * a * c > 0 and sp.sqrt(b * b - 4 * a * c).is_irrational:
                return (f"Find all solutions to ${poly_tex([a, b, c])} = 0$." + tail,
                        ", ".join(surd_roots(a, b, c)))
    numerators = r.sample(range(-4 * L - 5, 4 * L + 6), 2)
    r1, r2 = (sp.Rational(n, r.randint(1, 5) if L == 3 else 1) for n in numerators)  # rational at level 3
    coeffs = [a, -a * (r1 + r2), a * r1 * r2]  # Vieta, then clear denominators
    den = sp.ilcm(*[sp.Rational(v).q for v in coeffs])
    answer = ", ".join(tex(v) for v in sorted({r1, r2}))
    return f"Find all solutions to ${poly_tex([v * den for v in coeffs])} = 0$." + tail, answer


def linear_systems(r: random.Random, L: int) -> tuple[str, str]:
    x, y = (sp.Integer(r.randint(-3 * L - 6, 3 * L + 6)) for _ in range(2))
    x = x if L <= 4 else sp.Rational(r.randint(-20, 20), r.randint(2, 5))
    coef = [nonzero(r, -2 * L - 1, 2 * L + 1) for _ in range(4)] if L > 1 else [1, 1, 1, -1]
    while coef[0] * coef[3] == coef[1] * coef[2]:  # singular: redraw the second equation
        coef[2:] = nonzero(r, -2 * L - 1, 2 * L + 1), nonzero(r, -2 * L - 1, 2 * L + 1)
    a, b, c, d = coef
    e, f, det = a * x + b * y, c * x + d * y, a * d - b * c
    sx, sy = (e * d - b * f) / det, (a * f - e * c) / det  # Cramer's rule, exact
    eqs = f"${poly_tex([a, b, 0], 'X')} = {tex(e)}$ and ${poly_tex([c, d, 0], 'X')} = {tex(f)}$"
    eqs = eqs.replace("X^2", "x").replace("X", "y")
    if r.random() < 0.3:
        return f"If {eqs}, what is the value of $xy$?", tex(sx * sy)
    return (f"Solve the system {eqs}. Enter your answer as an ordered pair $(x, y)$.",
            f"({tex(sx)}, {tex(sy)})")


def modular_arithmetic(r: random.Random, L: int) -> tuple[str, str]:
    m = r.randint(3, 5 + 4 * L)
    if L == 1:
        n = r.randint(20, 2000)
        return f"What is the remainder when ${n}$ is divided by ${m}$?", str(sp.Integer(n) % m)
    if L == 2:
        a, b, c = r.randint(10, 300), r.randint(10, 300), r.randint(1, 99)
        return f"What is the remainder when ${a} \\cdot {b} + {c}$ is divided by ${m}$?", str((a * b + c) % m)
    if L == 3:
        a, k = r.randint(2, 30), r.randint(10, 200)
        if r.random() < 0.5:
            return f"What is the units digit of ${a}^{{{k}}}$?", str(sp.Integer(a) ** k % 10)
        return f"What is the remainder when ${a}^{{{k}}}$ is divided by ${m}$?", str(pow(a, k, m))
    p = sp.prime(r.randint(4, 10 + 2 * L))
    a, b = r.randint(2, p - 1), r.randint(1, p - 1)
    if L == 4:
        return (f"Find the modular inverse of ${a}$ modulo ${p}$, as a residue between $0$ and ${p - 1}$.",
                str(sp.mod_inverse(a, p)))
    return (f"Find the smallest positive integer $x$ such that ${a}x \\equiv {b} \\pmod{{{p}}}$.",
            str(sp.mod_inverse(a, p) * b % p))


def gcd_lcm(r: random.Random, L: int) -> tuple[str, str]:
    if L == 5 and r.random() < 0.2:
        n = r.randint(6, 20)
        return (f"What is the smallest positive integer divisible by each of the integers $1$ through ${n}$?",
                str(sp.ilcm(*range(1, n + 1))))
    base, count = r.randint(2, 6 * L), 2 if L <= 2 else 3
    nums = sorted(r.sample(range(1, 6 * L + 6), count))
    nums = [base * n for n in nums]
    listed = ", ".join(f"${n}$" for n in nums[:-1]) + f" and ${nums[-1]}$"
    if L == 5:
        return (f"What is the sum of the greatest common divisor and the least common multiple of {listed}?",
                str(sp.igcd(*nums) + sp.ilcm(*nums)))
    if L % 2:
        return f"What is the greatest common divisor of {listed}?", str(sp.igcd(*nums))
    return f"What is the least common multiple of {listed}?", str(sp.ilcm(*nums))


def counting(r: random.Random, L: int) -> tuple[str, str]:
    if L <= 2:
        n, k = r.randint(5, 12 + 8 * L), r.randint(2, 4)
        things = r.choice([("people", "committee"), ("students", "study group"), ("players", "team")])
        if L == 1:
            return (f"How many different {k}-member {things[1]}s can be chosen from ${n}$ {things[0]}?",
                    str(sp.binomial(n, k)))
        return (f"In how many ways can ${k}$ different prizes be given to ${k}$ of ${n}$ {things[0]}, "
                "at most one prize each?", str(sp.ff(n, k)))
    if L == 3:
        counts = [r.randint(1, 4) for _ in range(r.randint(2, 4))]
        word = "".join(r.sample("".join(ch * c for ch, c in zip("ABCD", counts)), sum(counts)))
        value = sp.factorial(len(word)) / sp.prod([sp.factorial(c) for c in counts])
        return f"How many distinct arrangements of the letters in ${word}$ are there?", str(value)
    if L == 4:
        men, women, k = r.randint(4, 12), r.randint(4, 12), r.randint(3, 5)
        value = sp.binomial(men + women, k) - sp.binomial(men, k) - sp.binomial(women, k)
        return (f"A committee of ${k}$ is chosen from ${men}$ men and ${women}$ women. How many committees "
                "include at least one man and at least one woman?", str(value))
    n, k, low = r.randint(8, 30), r.randint(3, 6), r.choice(["positive", "nonnegative"])
    value = sp.binomial(n - 1, k - 1) if low == "positive" else sp.binomial(n + k - 1, k - 1)
    return (f"How many ordered ${k}$-tuples of {low} integers $(x_1, \\ldots, x_{k})$ satisfy "
            f"$x_1 + \\cdots + x_{k} = {n}$?", str(value))


def probability(r: random.Random, L: int) -> tuple[str, str]:
    tail = " Express your answer as a common fraction."
    if L == 1:
        s, k = r.choice([6, 8, 10, 12, 20]), r.randint(2, 5)
        word, test = r.choice([("greater than", k.__lt__), ("less than", k.__gt__), ("divisible by", None)])
        hits = sum(1 for v in range(1, s + 1) if (test(v) if test else v % k == 0))
        return (f"A fair ${s}$-sided die is rolled. What is the probability of rolling a number {word} ${k}$?"
                + tail, tex(sp.Rational(hits, s)))
    red, blue = r.randint(2, 4 * L + 2), r.randint(2, 4 * L + 2)
    if L == 2:
        return (f"A bag has ${red}$ red and ${blue}$ blue marbles. One marble is drawn at random. What is the "
                "probability that it is red?" + tail, tex(sp.Rational(red, red + blue)))
    if L == 3:
        s = r.choice([4, 6, 8, 10, 12])
        total, word = r.randint(3, 2 * s - 1), r.choice(["equal to", "at least", "at most"])
        ok = {"equal to": total.__eq__, "at least": total.__le__, "at most": total.__ge__}[word]
        ways = sum(1 for i in range(1, s + 1) for j in range(1, s + 1) if ok(i + j))
        return (f"Two fair ${s}$-sided dice, numbered $1$ to ${s}$, are rolled. What is the probability that "
                f"the sum is {word} ${total}$?" + tail, tex(sp.Rational(ways, s * s)))
    if L == 4:
        value = sp.binomial(red, 2) / sp.binomial(red + blue, 2)
        return (f"A bag has ${red}$ red and ${blue}$ blue marbles. Two marbles are drawn without replacement. "
                "What is the probability that both are red?" + tail, tex(value))
    n = r.randint(5, 12)
    k, word = r.randint(1, n - 1), r.choice(["at least", "at most", "exactly"])
    span = {"at least": range(k, n + 1), "at most": range(0, k + 1), "exactly": [k]}[word]
    value = sum(sp.binomial(n, j) for j in span) / sp.Integer(2) ** n
    return (f"A fair coin is flipped ${n}$ times. What is the probability of getting {word} ${k}$ heads?"
            + tail, tex(value))


def polynomials(r: random.Random, L: int) -> tuple[str, str]:
    x = sp.Symbol("x")
    if L <= 2:
        coeffs = [nonzero(r, -5 * L, 5 * L) for _ in range(L + 2)]
        a = r.randint(-3 * L, 3 * L)
        return f"Let $p(x) = {poly_tex(coeffs)}$. What is $p({a})$?", str(sp.Poly(coeffs, x).eval(a))
    if L == 3:
        a, b, n = nonzero(r, -4, 4), nonzero(r, -5, 5), r.randint(3, 7)
        k = r.randint(1, n - 1)
        coeff = sp.Poly((a * x + b) ** n, x).coeff_monomial(x**k)
        return f"What is the coefficient of $x^{k}$ in the expansion of $({poly_tex([a, b])})^{n}$?", str(coeff)
    if L == 4:
        coeffs = [nonzero(r, 1, 6)] + [r.randint(-12, 12) for _ in range(3)]
        which = r.choice(["sum", "product"])
        value = sp.Rational(-coeffs[1] if which == "sum" else -coeffs[3], coeffs[0])  # Vieta
        return f"What is the {which} of the roots of ${poly_tex(coeffs)} = 0$?", tex(value)
    coeffs = [nonzero(r, -4, 4)] + [r.randint(-9, 9) for _ in range(r.randint(3, 5))]
    a = nonzero(r, -3, 3)
    remainder = sp.rem(sp.Poly(coeffs, x), sp.Poly([1, -a], x)).as_expr()
    return (f"What is the remainder when ${poly_tex(coeffs)}$ is divided by ${poly_tex([1, -a])}$?",
            tex(remainder))


def sequences(r: random.Random, L: int) -> tuple[str, str]:
    a, d = r.randint(-10 * L, 10 * L), nonzero(r, -2 - 2 * L, 2 + 2 * L)
    n, first = r.randint(8, 10 + 10 * L), f"{a}, {a + d}, {a + 2 * d}, \\ldots"
    if L == 1:
        return f"What is the ${n}$th term of the arithmetic sequence ${first}$?", str(a + (n - 1) * d)
    if L == 2:
        return (f"What is the sum of the first ${n}$ terms of the arithmetic sequence ${first}$?",
                str(sp.Integer(n) * (2 * a + (n - 1) * d) / 2))
    if L == 3:
        g, q, k = r.randint(1, 9), r.choice([-3, -2, 2, 3]), r.randint(5, 9)
        return (f"What is the ${k}$th term of the geometric sequence ${g}, {g * q}, {g * q * q}, \\ldots$?",
                str(sp.Integer(g) * sp.Integer(q) ** (k - 1)))
    if L == 4:
        g = r.randint(1, 12)
        q = sp.Rational(r.randint(1, 5), r.randint(6, 9)) * r.choice([1, -1])
        series = join_terms([tex(g * q**i) for i in range(3)])
        return f"Find the sum of the infinite geometric series ${series} + \\cdots$.", tex(g / (1 - q))
    p, c, start, k = r.randint(2, 3), r.randint(-5, 5), r.randint(-3, 5), r.randint(4, 8)
    value = sp.Integer(start)
    for _ in range(k - 1):
        value = p * value + c
    rule = f"a_{{n+1}} = {p}a_n" + (f" {'+' if c >= 0 else '-'} {abs(c)}" if c else "")
    return f"A sequence has $a_1 = {start}$ and ${rule}$ for $n \\ge 1$. What is $a_{k}$?", str(value)


def geometry(r: random.Random, L: int) -> tuple[str, str]:
    pi_tail = " Express your answer in terms of $\\pi$."
    if L == 1:
        b, h = r.randint(2, 30), r.randint(2, 30)
        return f"A triangle has base ${b}$ and height ${h}$. What is its area?", tex(sp.Rational(b * h, 2))
    if L == 2:
        size, given = r.randint(2, 60), r.choice(["radius", "diameter"])
        asked = r.choice(["area", "circumference"])
        rad = sp.Rational(size, 1 if given == "radius" else 2)
        value = sp.pi * rad**2 if asked == "area" else 2 * sp.pi * rad
        return f"What is the {asked} of a circle of {given} ${size}$?" + pi_tail, tex(value)
    if L == 3:
        p, q = (r.randint(-9, 9), r.randint(-9, 9)), (r.randint(-9, 9), r.randint(-9, 9))
        q = (q[0] + 1, q[1] + 3) if p == q else q
        return (f"What is the distance between the points $({p[0]}, {p[1]})$ and $({q[0]}, {q[1]})$? "
                "Express your answer in simplest radical form.",
                tex(sp.sqrt((p[0] - q[0]) ** 2 + (p[1] - q[1]) ** 2)))
    if L == 4:
        rad, h = r.randint(1, 12), r.randint(1, 15)
        if r.random() < 0.3:
            return f"What is the volume of a sphere of radius ${rad}$?" + pi_tail, tex(sp.pi * rad**3 * 4 / 3)
        shape, value = r.choice([("cylinder", sp.pi * rad**2 * h), ("cone", sp.pi * rad**2 * h / 3)])
        return f"What is the volume of a {shape} with radius ${rad}$ and height ${h}$?" + pi_tail, tex(value)
    (x1, y1), (x2, y2), (x3, y3) = pts = [(r.randint(-10, 10), r.randint(-10, 10)) for _ in range(3)]
    area = abs(sp.Rational(x1 * (y2 - y3) + x2 * (y3 - y1) + x3 * (y1 - y2), 2))  # shoelace
    if area == 0:
        n = r.randint(5, 40)
        return f"How many diagonals does a convex polygon with ${n}$ sides have?", str(n * (n - 3) // 2)
    shown = ", ".join(f"({x}, {y})" for x, y in pts)
    return f"What is the area of the triangle with vertices ${shown}$?", tex(area)


def exponents_logs(r: random.Random, L: int) -> tuple[str, str]:
    if L == 1:
        a, k = r.randint(2, 30) * r.choice([1, -1]), r.randint(2, 3)
        return f"Compute ${paren(a)}^{k}$.", str(sp.Integer(a) ** k)
    if L == 2:
        b, (m, n, k) = r.choice([2, 3, 5, 7, 10]), (r.randint(2, 20) for _ in range(3))
        return f"If ${b}^{{{m}}} \\cdot {b}^{{{n}}} \\div {b}^{{{k}}} = {b}^n$, what is $n$?", str(m + n - k)
    c = r.choice([2, 3, 5])
    if L == 3:
        p, q = r.randint(1, 3), r.randint(-4, 8)
        value = sp.log(sp.Integer(c) ** abs(q), c) * sp.sign(q) / p  # log_{c^p} c^q, exact in sympy
        return f"Evaluate $\\log_{{{c ** p}}} {tex(sp.Integer(c) ** q)}$.", tex(value)
    if L == 4:
        (p, q), s, t = r.sample([2, 3, 4], 2), nonzero(r, -6, 6), nonzero(r, -6, 6)
        root = sp.Rational(q * t - p * s, p - q)  # c^{p(x+s)} = c^{q(x+t)}: equal exponents
        equation = f"{c ** p}^{{{poly_tex([1, s])}}} = {c ** q}^{{{poly_tex([1, t])}}}"
        return f"Solve for $x$: ${equation}$.", tex(root)
    a, b = r.sample(range(1, 7), 2)
    p = r.choice([2, 3, 4])
    base, e = sp.Rational(a, b) ** p, sp.Rational(r.choice([-3, -2, -1, 1, 2, 3]), p)
    return f"Compute $\\left({tex(base)}\\right)^{{{tex(e)}}}$.", tex(base**e)


def radicals(r: random.Random, L: int) -> tuple[str, str]:
    if L == 1:
        n, k = r.randint(2, 60), r.choice([2, 2, 3])
        shown = f"\\sqrt{{{n * n}}}" if k == 2 else f"\\sqrt[3]{{{n ** 3}}}"
        return f"Compute ${shown}$.", str(sp.root(sp.Integer(n) ** k, k))
    if L == 2:
        n = r.randint(2, 20) ** 2 * r.choice([2, 3, 5, 6, 7, 10, 11, 13])
        return f"Simplify $\\sqrt{{{n}}}$.", tex(sp.sqrt(n))
    if L == 3:
        a, b = r.randint(2, 40), r.randint(2, 40)
        return f"Simplify $\\sqrt{{{a}}} \\cdot \\sqrt{{{b}}}$.", tex(sp.sqrt(a) * sp.sqrt(b))
    if L == 4:
        a, b = r.randint(1, 30), r.choice([2, 3, 5, 6, 7, 8, 12, 18, 20, 27])
        return (f"Rationalize the denominator: $\\frac{{{a}}}{{\\sqrt{{{b}}}}}$.",
                tex(sp.radsimp(a / sp.sqrt(b))))
    m, ks, signs = r.choice([2, 3, 5, 6, 7]), [r.randint(1, 9) for _ in range(3)], [1, r.choice([1, -1]), -1]
    terms = [f"{'-' if sg < 0 else ''}\\sqrt{{{k * k * m}}}" for sg, k in zip(signs, ks)]
    return f"Simplify ${join_terms(terms)}$.", tex(sum(sg * sp.sqrt(k * k * m) for sg, k in zip(signs, ks)))


def number_theory(r: random.Random, L: int) -> tuple[str, str]:
    n = r.randint(12, 150 * L * L)
    if L == 1:
        return f"How many positive divisors does ${n}$ have?", str(sp.divisor_count(n))
    if L == 2:
        return f"What is the sum of the positive divisors of ${n}$?", str(sp.divisor_sigma(n))
    if L == 3:
        n = r.randint(100, 20000)
        return f"What is the largest prime factor of ${n}$?", str(max(sp.factorint(n)))
    if L == 4:
        digits = str(sp.factorial(n % 240 + 10))
        return (f"How many zeros are at the end of ${n % 240 + 10}!$?",
                str(len(digits) - len(digits.rstrip("0"))))
    return f"How many positive integers less than or equal to ${n}$ are relatively prime to ${n}$?", \
        str(sp.totient(n))


def statistics(r: random.Random, L: int) -> tuple[str, str]:
    data = [r.randint(-5 * L if L > 2 else 1, 10 * L + 10) for _ in range(L + 3)]
    shown = ", ".join(map(str, data))
    if L in (1, 4):
        return f"What is the arithmetic mean of ${shown}$?", tex(sp.Rational(sum(data), len(data)))
    if L in (2, 3):  # odd count at level 2, even at level 3 (mean of the middle two)
        s, mid = sorted(data), len(data) // 2
        median = s[mid] if len(s) % 2 else sp.Rational(s[mid - 1] + s[mid], 2)
        return f"What is the median of ${shown}$?", tex(median)
    mean = sp.Rational(sum(data), len(data))
    variance = sum((v - mean) ** 2 for v in data) / len(data)
    return f"What is the population variance of ${shown}$?", tex(variance)


FAMILIES: dict[str, Generator] = {f.__name__: f for f in (
    arithmetic, fractions, percentages, linear_equations, quadratic_equations, linear_systems,
    modular_arithmetic, gcd_lcm, counting, probability, polynomials, sequences, geometry,
    exponents_logs, radicals, number_theory, statistics)}
FAMILY_ORDER = tuple(FAMILIES)  # problem i belongs to family (i // 5) mod 17

"""Build benchmarks/data/verify_suite.jsonl (package data, so verify_bench runs from an install): labelled
(pred, gold, label) pairs for corl_gym.verify.

Labels come from how each pair is made, never from a checker: every gold answer is rewritten by a
transformation that is known to keep its value (label true: `\\frac{a}{b}` -> `a/b`, `k\\sqrt{m}` ->
`\\sqrt{k^2 m}`, a union reordered) or known to change it (label false: sign flipped, `k\\sqrt{m}` ->
`\\sqrt{km}`, a bracket changed, a root dropped, a decimal approximation). Golds are read from the
data folder (CORL_DATA_DIR); the hand-written pairs at the end cover forms no gold has.

Usage: CORL_DATA_DIR=../shared/data python tests/data/make_verify_suite.py
"""

from __future__ import annotations

import json
import os
import random
import re
from fractions import Fraction
from pathlib import Path

OUT = Path(__file__).resolve().parents[2] / "benchmarks" / "data" / "verify_suite.jsonl"


def _load(name: str) -> list[dict]:
    path = Path(os.environ["CORL_DATA_DIR"]) / name
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _decimal(value: Fraction) -> str | None:
    """The exact decimal of `value` when it terminates, else None."""
    den = value.denominator
    for p in (2, 5):
        while den % p == 0:
            den //= p
    if den != 1:
        return None
    text = f"{float(value):.12f}".rstrip("0").rstrip(".")
    return text if Fraction(text) == value else None


def _int_variants(g: str, n: int) -> list[tuple[str, bool, str]]:
    out = [(f"{n}.0", True, "int-trailing-zero"), (f"\\boxed{{{n}}}", True, "int-boxed"),
           (str(n + 1), False, "int-off-by-one"), (f"{n}.5", False, "int-half")]
    if abs(n) >= 1000:
        out.append((f"{n:,}", True, "int-thousands"))
    if n != 0:
        out.append((str(-n), False, "int-sign"))
    if g.lstrip("-") != str(abs(n)):  # the gold itself has separators or leading zeros
        out.append((str(n), True, "int-plain"))
    elif 0 <= n < 100:
        out.append((f"{n:03d}", True, "int-leading-zeros"))
    return out


def _frac_variants(sign: str, a: int, b: int) -> list[tuple[str, bool, str]]:
    value = Fraction(a, b) * (-1 if sign else 1)
    out = [(f"{sign}{a}/{b}", True, "frac-slash"), (f"{sign}\\dfrac{{{2 * a}}}{{{2 * b}}}", True, "frac-unreduced"),
           (f"{'' if sign else '-'}\\frac{{{a}}}{{{b}}}", False, "frac-sign"),
           (f"{sign}\\frac{{{b}}}{{{a}}}", False, "frac-inverted")]
    decimal = _decimal(value)
    if decimal:
        out.append((decimal, True, "frac-decimal"))
    else:
        out.append((f"{float(value):.3f}", False, "frac-decimal-approx"))
    if a > b and not sign and a % b:
        out.append((f"{a // b}\\frac{{{a % b}}}{{{b}}}", True, "frac-mixed-number"))
    return out


def _variants(g: str) -> list[tuple[str, bool, str]]:
    s = g.strip()
    plain = s.replace(",\\!", "").replace("\\!", "").replace("\\$", "").replace(" ", "")
    if re.fullmatch(r"-?\d+", plain) or re.fullmatch(r"-?\d{1,3}(,\d{3})+", plain):
        return _int_variants(s, int(plain.replace(",", "")))
    m = re.fullmatch(r"(-?)\\[dt]?frac\{(\d+)\}\{(\d+)\}", plain)
    if m and int(m.group(3)) > 1 and Fraction(int(m.group(2)), int(m.group(3))).denominator == int(m.group(3)):
        return _frac_variants(m.group(1), int(m.group(2)), int(m.group(3)))
    m = re.fullmatch(r"-?\d*\.\d+", plain)
    if m:
        value = Fraction(plain)
        return [(f"\\frac{{{value.numerator}}}{{{value.denominator}}}", True, "decimal-as-fraction"),
                (plain + "0", True, "decimal-trailing-zero"), (str(value + Fraction(1, 100)), False, "decimal-off")]
    m = re.fullmatch(r"(\d*)\\sqrt\{?(\d+)\}?", plain)
    if m and int(m.group(2)) > 1:
        k, r = int(m.group(1) or 1), int(m.group(2))
        out = [(f"\\sqrt{{{k * k * r}}}", True, "radical-absorbed"),
               (f"{(k * k * r) ** 0.5:.4f}", False, "radical-decimal")]
        if k > 1:
            out.append((f"\\sqrt{{{k * r}}}", False, "radical-coefficient-inside"))
        return out
    m = re.fullmatch(r"(\d*)\\pi", plain)
    if m:
        k = int(m.group(1) or 1)
        return [(f"{k}\\cdot\\pi", True, "pi-cdot"), (f"\\pi{k}" if k > 1 else "\\pi", True, "pi-commuted"),
                (f"{k * 3.14159:.2f}", False, "pi-decimal"), (str(k), False, "pi-dropped")]
    m = re.fullmatch(r"(-?\d+)([+-])(\d*)i", plain)
    if m:
        re_part, op, im = m.group(1), m.group(2), m.group(3)
        flip = "-" if op == "+" else "+"
        return [(f"{re_part} {op} {im} i", True, "complex-spacing"),
                (f"{op}{im}i{'+' if not re_part.startswith('-') else ''}{re_part}", True, "complex-reordered"),
                (f"{re_part}{flip}{im}i", False, "complex-conjugate")]
    m = re.fullmatch(r"(\d+)\^\{?\\circ\}?", plain)
    if m:
        return [(m.group(1), True, "degrees-dropped"), (f"{m.group(1)}\\text{{ degrees}}", True, "degrees-word"),
                (f"{int(m.group(1)) + 90}^\\circ", False, "degrees-off")]
    m = re.fullmatch(r"\\text\{\(([A-E])\)\}", plain)
    if m:
        other = "B" if m.group(1) != "B" else "C"
        return [(m.group(1), True, "choice-letter"), (f"({m.group(1)})", True, "choice-paren"),
                (other, False, "choice-other")]
    m = re.fullmatch(r"\\text\{([A-Za-z]+)\}", plain)
    if m:
        return [(m.group(1), True, "text-plain"), (m.group(1).lower(), True, "text-lowercase"),
                ("\\text{Nobody}", False, "text-other")]
    m = re.fullmatch(r"(\d+)_\{?(\d+)\}?", plain)
    if m:
        digits, base = m.group(1), m.group(2)
        changed = digits[:-1] + ("0" if digits[-1] != "0" else "1")
        return [(f"{digits}_{{{base}}}", True, "basen-braces"), (f"{changed}_{base}", False, "basen-digit")]
    if "\\cup" in s:
        parts = [p.strip() for p in s.split("\\cup")]
        out = [(" \\cup ".join(reversed(parts)), True, "union-reordered")]
        flipped = {"(": "[", "[": "("}
        first = parts[0].replace("\\left", "").lstrip()
        if first and first[0] in flipped and not first.startswith("(-\\infty"):
            out.append((flipped[first[0]] + first[1:] + " \\cup " + " \\cup ".join(parts[1:]), False, "union-bracket"))
        out.append((" \\cup ".join(parts[:-1]), False, "union-missing-part"))
        return out
    if "matrix" in s:
        return [(s.replace("pmatrix", "bmatrix"), True, "matrix-brackets"),
                (s.replace("\\begin{pmatrix}", "\\begin{pmatrix} 1+", 1), False, "matrix-entry")]
    if "\\pm" in s and "," not in s:
        a, b = s.split("\\pm", 1)
        if a.strip():
            return [(f"{a.strip()} + {b.strip()}, {a.strip()} - {b.strip()}", True, "pm-expanded"),
                    (f"{a.strip()} + {b.strip()}", False, "pm-one-root")]
    if re.fullmatch(r"[^()\[\]{}=]+(,[^()\[\]{}=]+)+", s):
        items = [x.strip() for x in s.split(",")]
        if len(set(items)) == len(items):
            return [(", ".join(reversed(items)), True, "list-reordered"),
                    (", ".join(items[:-1]), False, "list-missing-root")]
    m = re.fullmatch(r"(\\left)?\((.*?)(\\right)?\)", s)
    if m and "," in m.group(2) and "\\infty" not in s and "(" not in m.group(2):
        items = [x.strip() for x in m.group(2).split(",")]
        out = [("(" + ",".join(items) + ")", True, "tuple-spacing")]
        if len(items) >= 2 and items[0] != items[1]:
            out.append(("(" + ", ".join([items[1], items[0]] + items[2:]) + ")", False, "tuple-swapped"))
        return out
    return [(f"${s}$", True, "wrapper-dollars"), (f"-\\left({s}\\right)", False, "negated")] if _negatable(s) else []


def _negatable(s: str) -> bool:
    return not re.search(r"[=<>,]|\\text|matrix|\\infty|\\cup|\\pm|\\\{|\\mbox|\$", s) and s.strip() not in ("0",)


HAND_WRITTEN = [
    # (pred, gold, label, kind): spellings no gold has (separators, repeating decimals, radicals, units,
    # intervals, roots with \pm, equations, base-n, word and multiple-choice answers) and their near misses
    ("10080", "10,\\!080", True, "thousands"), ("1,000", "1000", True, "thousands"),
    ("1 000", "1000", True, "thousands"),
    ("025", "25", True, "leading-zero"), ("27.0", "27", True, "trailing-zero"),
    ("\\frac43", "\\frac{4}{3}", True, "frac-compact"),
    ("\\tfrac{4}{3}", "4/3", True, "frac-tfrac"), ("0.5", "\\frac{1}{2}", True, "exact-decimal"),
    ("0.\\overline{3}", "\\frac{1}{3}", True, "repeating"), ("0.1\\overline{6}", "\\frac{1}{6}", True, "repeating"),
    ("0.\\overline{36}", "\\frac{4}{11}", True, "repeating"), ("0.333", "\\frac{1}{3}", False, "decimal-approx"),
    ("0.33", "0.\\overline{3}", False, "decimal-approx"), ("1\\frac{4}{5}", "\\frac{9}{5}", True, "mixed-number"),
    ("1\\frac{4}{5}", "1.8", True, "mixed-number"), ("2\\sqrt{2}", "\\sqrt{8}", True, "radical"),
    ("\\frac{\\sqrt{3}}{3}", "\\frac{1}{\\sqrt{3}}", True, "radical-rationalised"),
    ("2\\sqrt{3}", "\\sqrt{6}", False, "radical-trap"),
    ("\\sqrt{3+2\\sqrt{2}}", "1+\\sqrt{2}", True, "radical-nested"), ("1.414", "\\sqrt{2}", False, "radical-decimal"),
    ("\\frac{\\pi}{2}", "\\pi/2", True, "pi"), ("3.14", "\\pi", False, "pi-decimal"), ("e^2", "e^{2}", True, "euler"),
    ("2.718", "e", False, "euler-decimal"), ("1 - 12 i", "1-12i", True, "complex"),
    ("1+12i", "1-12i", False, "complex-sign"),
    ("\\frac{11}{5}-\\frac{2}{5}i", "\\dfrac{11}{5} - \\dfrac{2}{5}i", True, "complex-frac"),
    ("-i", "-i", True, "complex"),
    ("i^2", "-1", True, "complex"), ("90", "90^\\circ", True, "degrees"), ("90^{\\circ}", "90^\\circ", True, "degrees"),
    ("50\\%", "50", True, "percent"), ("50", "50\\%", True, "percent"), ("51\\%", "50\\%", False, "percent"),
    ("5.4", "5.4 \\text{ cents}", True, "units"), ("15", "15\\mbox{ cm}^2", True, "units"),
    ("864", "864 \\mbox{ inches}^2", True, "units"),
    ("\\$18.90", "18.9", True, "currency"), ("\\$ 251.60", "251.6", True, "currency"),
    ("\\boxed{\\frac{1}{2}}", "0.5", True, "boxed"),
    ("$\\frac{1}{2}$", "\\frac12", True, "dollars"), ("1.2 \\times 10^{3}", "1200", True, "scientific"),
    ("1.2e3", "1200", True, "e-notation"),
    ("1.2E-3", "0.0012", True, "e-notation"), ("6.72\\times10^{-5}", ".0000672", True, "scientific"),
    ("1.2e3", "120", False, "e-notation"),
    ("(3,4]", "(3,4]", True, "interval"), ("(3,4)", "(3,4]", False, "interval-bracket"),
    ("[3,4]", "(3,4]", False, "interval-bracket"),
    ("(3,\\infty) \\cup (-\\infty,1)", "(-\\infty,1)\\cup(3,\\infty)", True, "union-order"),
    ("(-\\infty,1]\\cup(3,\\infty)", "(-\\infty,1)\\cup(3,\\infty)", False, "union-bracket"),
    ("x > 2", "(2,\\infty)", True, "inequality"),
    ("x \\ge 2", "(2,\\infty)", False, "inequality-strictness"),
    ("-2 \\le x \\le 7", "x \\in [-2,7]", True, "inequality"),
    ("x<2 \\text{ or } x>3", "(-\\infty,2)\\cup(3,\\infty)", True, "inequality-union"),
    ("2 < x < 5", "(2,5)", True, "inequality"),
    ("(6,31,-1)", "(6,31,-1)", True, "tuple"), ("(31,6,-1)", "(6,31,-1)", False, "tuple-order"),
    ("6, 31, -1", "(6,31,-1)", True, "tuple-bare"),
    ("-2, 1", "1,-2", True, "list-order"), ("\\{1, -2\\}", "1,-2", True, "set-vs-list"),
    ("1", "1,-2", False, "list-missing"),
    ("1, -2, 3", "1,-2", False, "list-extra"), ("1 \\pm \\sqrt{19}", "1+\\sqrt{19}, 1-\\sqrt{19}", True, "pm"),
    ("1 - \\sqrt{19}, 1 + \\sqrt{19}", "1 \\pm \\sqrt{19}", True, "pm"),
    ("1+\\sqrt{19}", "1 \\pm \\sqrt{19}", False, "pm-missing"),
    ("\\frac{1-\\sqrt{5}}{2}, \\frac{1+\\sqrt{5}}{2}", "\\frac{1 \\pm \\sqrt{5}}{2}", True, "pm-inside"),
    ("\\frac{1+\\sqrt{5}}{2}", "\\frac{1 \\pm \\sqrt{5}}{2}", False, "pm-inside"),
    ("x=5", "5", True, "equation-value"), ("5", "x=5", True, "equation-value"), ("x=-5", "5", False, "equation-value"),
    ("y=2x+3", "y = 2x + 3", True, "equation"), ("2x - y + 3 = 0", "y = 2x + 3", True, "equation-rearranged"),
    ("-5x+7y-11z-4=0", "5x - 7y + 11z + 4 = 0", True, "equation-scaled"),
    ("5x-7y+11z-4=0", "5x - 7y + 11z + 4 = 0", False, "equation"),
    ("ab+2a+5b+10", "(a+5)(b+2)", True, "polynomial"), ("ab+2a+5b+11", "(a+5)(b+2)", False, "polynomial"),
    ("(x-1)(x^4+x^2+1)", "x^5 - x^4 + x^3 - x^2 + x - 1", True, "polynomial"),
    ("x^2-1", "(x-1)(x+1)", True, "polynomial"),
    ("x^2+1", "(x-1)(x+1)", False, "polynomial"), ("\\sin^2 x + \\cos^2 x", "1", True, "identity"),
    ("\\frac{x^2-1}{x-1}", "x+1", True, "rational-function"), ("2n+2", "2k+2", False, "other-variable"),
    ("\\mathbb{R}", "(-\\infty,\\infty)", True, "interval"), ("\\frac{\\cos x}{\\sin x}", "\\cot x", True, "trig"),
    ("\\tan x", "\\cot x", False, "trig"),
    (
        "\\begin{bmatrix} -1 & 0 \\\\ 0 & -1 \\end{bmatrix}",
        "\\begin{pmatrix} -1 & 0 \\\\ 0 & -1 \\end{pmatrix}",
        True,
        "matrix",
    ),
    (
        "\\begin{pmatrix} 1 & 0 \\\\ 0 & -1 \\end{pmatrix}",
        "\\begin{pmatrix} -1 & 0 \\\\ 0 & -1 \\end{pmatrix}",
        False,
        "matrix",
    ),
    (
        "\\begin{pmatrix} -\\frac{1}{3} \\\\ \\frac{2}{3} \\\\ \\frac{5}{3} \\end{pmatrix}",
        "\\begin{pmatrix} -1/3 \\\\ 2/3 \\\\ 5/3 \\end{pmatrix}",
        True,
        "matrix",
    ),
    ("52_8", "52_{8}", True, "base-n"), ("52", "52_8", True, "base-n-digits"), ("53_8", "52_8", False, "base-n"),
    ("-(\\text{even})", "\\text{even}", False, "text-in-math"), ("\\text{even number}", "\\text{even}", False, "text"),
    ("Evelyn", "\\text{Evelyn}", True, "text"), ("-None", "None", False, "text-in-math"),
    ("2:8", "1:4", True, "ratio"), ("1:3", "1:4", False, "ratio"),
    ("\\frac{2}{3}", "\\frac23 \\approx 0.67", True, "approx"),
    ("0.67", "\\frac23 \\approx 0.67", False, "approx"), ("C, B", "\\text{B, C}", True, "multi-choice"),
    ("B", "\\text{B, C}", False, "multi-choice"), ("2 \\text{ m}", "2", True, "units"),
    ("\\text{east}", "\\text{East}", True, "text"), ("\\text{west}", "\\text{east}", False, "text"),
    ("C", "\\text{(C)}", True, "choice"), ("\\textbf{(C)}", "\\text{(C)}", True, "choice"),
    ("(D)", "\\text{(C)}", False, "choice"),
    ("24!^2", "24!^2", True, "factorial"), ("24", "24!^2", False, "factorial-power"), ("120", "5!", True, "factorial"),
    ("-6", "6", False, "sign"), ("\\frac{-1}{2}", "-\\frac{1}{2}", True, "sign"),
    ("\\frac{1}{-2}", "\\frac{1}{2}", False, "sign"),
    ("\\sqrt[3]{8}", "2", True, "root"), ("2^{10}", "1024", True, "power"), ("2^{-1}", "0.5", True, "power"),
    ("\\binom{5}{2}", "10", True, "binomial"),
    ("\\left( 3, \\frac{\\pi}{2} \\right)", "(3,\\frac{\\pi}{2})", True, "tuple-pi"),
    ("(3, \\pi)", "\\left( 3, \\frac{\\pi}{2} \\right)", False, "tuple-pi"),
    ("\\{1\\pm\\sqrt{5},-2\\}", "\\{-2, 1+\\sqrt{5}, 1-\\sqrt{5}\\}", True, "set-pm"),
    ("\\frac{270}{7}", "\\frac{270}7\\text{ degrees}", True, "units"),
]


def _pick(variants: list, rng: random.Random) -> list:
    """One equivalent and one non-equivalent variant per gold, chosen at random (seeded)."""
    chosen = []
    for label in (True, False):
        options = [v for v in variants if v[1] is label]
        if options:
            chosen.append(rng.choice(options))
    return chosen


def main() -> None:
    rng = random.Random(0)
    rows, seen = [], set()

    def add(pred: str, gold: str, label: bool, kind: str, source: str) -> None:
        if (pred, gold) not in seen and pred.strip() != gold.strip():
            seen.add((pred, gold))
            rows.append({"pred": pred, "gold": gold, "label": label, "kind": kind, "source": source})

    datasets = [("math500.jsonl", None), ("aime2024.jsonl", None), ("aime2025.jsonl", None), ("amc2023.jsonl", 10)]
    for name, limit in datasets:
        for row in _load(name)[:limit]:
            for pred, label, kind in _pick(_variants(row["answer"]), rng):
                add(pred, row["answer"], label, kind, row["id"])
    train = [
        r for r in _load("math_train.jsonl") if re.search(r"overline|\\cup|\\pm|_\{?\d|\\sqrt|\\pi|i$", r["answer"])
    ]
    for row in rng.sample(train, 60):
        for pred, label, kind in _pick(_variants(row["answer"]), rng):
            add(pred, row["answer"], label, kind, row["id"])
    for pred, gold, label, kind in HAND_WRITTEN:
        add(pred, gold, label, kind, "hand-written")
    OUT.write_text("".join(json.dumps(r) + "\n" for r in rows))
    print(f"{len(rows)} pairs ({sum(r['label'] for r in rows)} equivalent) -> {OUT.name}")


if __name__ == "__main__":
    main()

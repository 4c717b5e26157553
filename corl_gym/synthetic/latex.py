"""MATH-style LaTeX for the synthetic problem generator (`corl_gym.synthetic`): exact values written the
way MATH writes answers, and the small numeric helpers the families share. Our own trusted code, so
building sympy objects here is fine."""

from __future__ import annotations

import random
import re
from decimal import Decimal

import sympy as sp

Number = int | sp.Rational


# ---- formatting ---------------------------------------------------------------------------------------

def tex(value: Number | sp.Expr) -> str:
    """MATH-style LaTeX of an exact value: `5`, `-\\frac{3}{4}`, `2\\sqrt{3}`, `\\frac{32\\pi}{3}`."""
    value = sp.sympify(value)
    if value.is_Integer:
        return str(int(value))
    if value.is_Rational:
        return f"{'-' if value.p < 0 else ''}\\frac{{{abs(value.p)}}}{{{value.q}}}"
    # sympy writes `2 \sqrt{3}` and `- \frac{..}`; MATH writes them without the spaces.
    text = re.sub(r"(?<=[\d}]) (?=\\)", "", sp.latex(value))
    return re.sub(r"^- ", "-", text)


def decimal_or_fraction(value: sp.Rational) -> str:
    """Terminating values as decimals (`7.5`), others as fractions: how percentages are usually answered."""
    if not set(sp.factorint(int(value.q))) <= {2, 5}:
        return tex(value)
    text = f"{Decimal(int(value.p)) / Decimal(int(value.q)):f}"  # exact: the expansion terminates
    return text.rstrip("0").rstrip(".") if "." in text else text


def join_terms(terms: list[str]) -> str:
    """`["3", "-\\sqrt{2}", "x"]` -> `3 - \\sqrt{2} + x`."""
    return terms[0] + "".join(f" - {t[1:]}" if t.startswith("-") else f" + {t}" for t in terms[1:])


def poly_tex(coeffs: list[Number], var: str = "x") -> str:
    """`[2, -3, 0, 1]` -> `2x^3 - 3x^2 + 1` (highest degree first)."""
    terms = []
    for k, c in zip(range(len(coeffs) - 1, -1, -1), coeffs):
        mono = "" if k == 0 else var if k == 1 else f"{var}^{k}"
        if c != 0:
            terms.append(("-" if c < 0 else "") + ("" if abs(c) == 1 and mono else tex(abs(c))) + mono)
    return join_terms(terms) if terms else "0"


def paren(n: Number) -> str:
    return f"({tex(n)})" if n < 0 else tex(n)


def evaluate(values: list[sp.Rational], ops: list[str]) -> sp.Rational:
    """Left-to-right evaluation with the usual precedence: `*` and `/` bind tighter than `+` and `-`."""
    total, sign, current = sp.Integer(0), 1, values[0]
    for op, v in zip(ops, values[1:]):
        if op in "*/":
            current = current * v if op == "*" else current / v
        else:
            total, sign, current = total + sign * current, (1 if op == "+" else -1), v
    return total + sign * current


def nonzero(r: random.Random, lo: int, hi: int) -> int:
    return r.choice([n for n in range(lo, hi + 1) if n != 0])


SYMBOL = {"+": "+", "-": "-", "*": "\\times", "/": "\\div"}

"""The slow path, run only inside a verifier worker process: sympy, then math-verify as a fallback.

Sympy objects are built node by node from our own parse tree (`to_sympy`): no string ever reaches
`sympify`, `parse_expr` or `eval`. Values compare as follows (the decisions):

- no variables: the difference evaluated to 60 significant digits must vanish to 1e-40 (relative).
  Decimal answers were parsed as exact rationals, so `1.414` never matches `\\sqrt{2}`, while exact
  forms (`2\\sqrt{2}` = `\\sqrt{8}`, rationalised or not, nested radicals) do.
- with variables: polynomials and rational functions are decided
  exactly (`cancel`: factored = expanded); other expressions must vanish after `expand` or,
  failing that, numerically at three fixed points (a standard identity test for expressions of this
  size; it accepts `\\cot x` = `\\cos x/\\sin x`).
- equations: same variables and proportional sides (`5x-7y+11z+4=0` = `-5x+7y-11z-4=0`); an
  equation without variables (`0.56 = 56\\%`) compares side by side.

Only when our parser does not know the syntax do we ask math-verify (LaTeX extraction only: its
plain-expression extractor calls `parse_expr`, which we never allow on model output).
"""

from __future__ import annotations

import sympy

from .compare import canon, equivalent
from .parse import LimitExceeded, ParseError, parse

_CONSTS = {"pi": sympy.pi, "e": sympy.E, "i": sympy.I, "inf": sympy.oo}
_FUNCS = {"sin": sympy.sin, "cos": sympy.cos, "tan": sympy.tan, "cot": sympy.cot, "sec": sympy.sec,
          "csc": sympy.csc, "ln": sympy.log, "log": sympy.log, "exp": sympy.exp, "arcsin": sympy.asin,
          "arccos": sympy.acos, "arctan": sympy.atan, "sinh": sympy.sinh, "cosh": sympy.cosh,
          "tanh": sympy.tanh}
_POINTS = (sympy.Rational(37, 100), sympy.Rational(113, 100), sympy.Rational(-271, 100))
MAX_EXPONENT = 10_000
MAX_FACTORIAL = 2000


def to_sympy(node: tuple) -> sympy.Expr:
    kind = node[0]
    if kind == "num":
        return sympy.Rational(node[1].numerator, node[1].denominator)
    if kind == "basen":
        return sympy.Integer(int(node[1], node[2]))
    if kind == "sym":
        return sympy.Symbol(node[1])
    if kind == "const":
        return _CONSTS[node[1]]
    if kind == "neg":
        return -to_sympy(node[1])
    if kind == "add":
        return sympy.Add(*[to_sympy(x) for x in node[1]])
    if kind == "mul":
        return sympy.Mul(*[to_sympy(x) for x in node[1]])
    if kind == "div":
        return to_sympy(node[1]) / to_sympy(node[2])
    if kind == "pow":
        return _power(to_sympy(node[1]), to_sympy(node[2]))
    if kind == "sqrt":
        inner = to_sympy(node[1])
        return sympy.sqrt(inner) if node[2] is None else sympy.root(inner, to_sympy(node[2]))
    if kind == "fact":
        return sympy.factorial(_bounded(to_sympy(node[1]), MAX_FACTORIAL))
    if kind == "binom":
        return sympy.binomial(_bounded(to_sympy(node[1]), MAX_FACTORIAL), to_sympy(node[2]))
    if kind == "abs":
        return sympy.Abs(to_sympy(node[1]))
    if kind == "func":
        return _FUNCS[node[1]](to_sympy(node[2]))
    raise ParseError(f"not a value: {kind}")


def _power(base: sympy.Expr, exponent: sympy.Expr) -> sympy.Expr:
    # A huge exponent would make sympy compute a giant integer or expand forever: refuse it.
    if exponent.is_number and exponent.is_real and abs(exponent) > MAX_EXPONENT and base not in (0, 1, -1):
        raise LimitExceeded("exponent too large")
    return sympy.Pow(base, exponent)


def _bounded(value: sympy.Expr, limit: int) -> sympy.Expr:
    if value.is_number and value.is_real and value > limit:
        raise LimitExceeded("argument too large")
    return value


def _vanishes(expr: sympy.Expr, scale: sympy.Expr) -> bool:
    value = sympy.N(expr, 60)
    size = abs(sympy.N(scale, 60)) + 1
    if not value.is_number or value.has(sympy.nan, sympy.zoo, sympy.oo, -sympy.oo):
        return False
    return bool(abs(value) <= sympy.Float("1e-40", 60) * size)


def scalar_eq(gold: tuple, pred: tuple) -> bool:
    a, b = to_sympy(gold), to_sympy(pred)
    if a.has(sympy.zoo, sympy.nan) or b.has(sympy.zoo, sympy.nan):
        return False  # a division by zero is no answer, even when both sides have one
    if a == b:
        return True
    if a.has(sympy.oo) or b.has(sympy.oo):
        return False
    diff = a - b
    if not diff.free_symbols:  # e.g. `2x+3` against `2x+4`: a constant difference
        return _vanishes(diff, 1 if a.free_symbols else a)
    # Variables may differ when one side is an identity in disguise (`\\sin^2 x + \\cos^2 x` = 1);
    # the tests below are over all variables of both sides, so `x` never equals `y`.
    symbols = sorted(a.free_symbols | b.free_symbols, key=str)
    if diff.is_rational_function(*symbols):  # polynomials and their quotients: decide exactly
        return sympy.cancel(diff) == 0
    if sympy.expand(diff) == 0:
        return True
    return _zero_at_points(diff, symbols, a)


def _zero_at_points(diff: sympy.Expr, symbols: list, scale: sympy.Expr) -> bool:
    tested = 0
    for k in range(len(_POINTS)):
        point = {s: _POINTS[(k + j) % len(_POINTS)] + j for j, s in enumerate(symbols)}
        value = sympy.N(diff.subs(point), 60)
        if value.has(sympy.nan, sympy.zoo) or not value.is_number:
            continue
        if not _vanishes(value, scale.subs(point)):
            return False
        tested += 1
    return tested >= 2


def equation_eq(gold: tuple, pred: tuple) -> bool:
    lhs = to_sympy(gold[1]) - to_sympy(gold[2])
    rhs = to_sympy(pred[1]) - to_sympy(pred[2])
    if not lhs.free_symbols:  # `0.56 = 56%` is a statement, not an equation: compare side by side
        return scalar_eq(gold[1], pred[1]) and scalar_eq(gold[2], pred[2])
    if lhs.free_symbols != rhs.free_symbols or rhs == 0:
        return False
    ratio = sympy.cancel(lhs / rhs)
    if ratio.free_symbols:
        return False
    return bool(ratio.is_number and ratio != 0)


def symbolic_verdict(pred: str, gold: str) -> str:
    """Verdict name for two normalised answers; only ever called inside a worker process."""
    try:
        gold_tree, pred_tree = parse(gold), parse(pred)
    except LimitExceeded:
        return "UNPARSEABLE"
    except (ParseError, RecursionError):
        return _math_verify(pred, gold)
    try:
        same = equivalent(canon(gold_tree), canon(pred_tree), scalar_eq, equation_eq)
    except LimitExceeded:
        return "UNPARSEABLE"
    except Exception:  # sympy cannot build or compare this form: let math-verify try
        return _math_verify(pred, gold)
    return "CORRECT" if same else "WRONG"


def _math_verify(pred: str, gold: str) -> str:
    from math_verify import LatexExtractionConfig
    from math_verify import parse as mv_parse
    from math_verify import verify as mv_verify

    config = [LatexExtractionConfig()]
    gold_parsed = mv_parse(f"${gold}$", extraction_config=config, parsing_timeout=None)
    pred_parsed = mv_parse(f"${pred}$", extraction_config=config, parsing_timeout=None)
    if not gold_parsed or not pred_parsed or len(pred_parsed) < 2:
        return "UNPARSEABLE"
    if isinstance(pred_parsed[0], str):
        return "UNPARSEABLE"
    return "CORRECT" if mv_verify(gold_parsed, pred_parsed, timeout_seconds=None) else "WRONG"

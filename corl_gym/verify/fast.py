"""The fast path: exact Gaussian-rational arithmetic on the parsed AST, no sympy.

Integers, decimals, fractions, mixed and repeating decimals, scientific notation, factorials,
perfect-square roots and complex numbers `a + bi` evaluate exactly here; anything else (pi, a
surd, a variable) raises `NeedSlow` and goes to the sympy worker. Every operation is size-capped
(`LimitExceeded`), so a power tower or `(10^6)!` is refused in microseconds instead of computed.
Comparison is exact: `0.333` is not `1/3`, `27.0` is `27`.
"""

from __future__ import annotations

import math
from fractions import Fraction

from .compare import NeedSlow, canon, equivalent
from .tokens import LimitExceeded

MAX_BITS = 20_000  # about 6000 digits: far past any real answer, cheap to compute
MAX_FACTORIAL = 2000

Gauss = tuple  # (re: Fraction, im: Fraction), or the strings "inf" / "-inf"


def _check_size(value: Fraction) -> Fraction:
    if value.numerator.bit_length() > MAX_BITS or value.denominator.bit_length() > MAX_BITS:
        raise LimitExceeded("number too large")
    return value


def exact(node: tuple) -> Gauss | str:
    kind = node[0]
    if kind == "num":
        return (node[1], Fraction(0))
    if kind == "const":
        if node[1] == "i":
            return (Fraction(0), Fraction(1))
        if node[1] == "inf":
            return "inf"
        raise NeedSlow
    if kind == "neg":
        value = exact(node[1])
        if isinstance(value, str):
            return "-inf" if value == "inf" else "inf"
        return (-value[0], -value[1])
    if kind == "add":
        return _finite_fold(node[1], _add)
    if kind == "mul":
        return _finite_fold(node[1], _mul)
    if kind == "div":
        return _div(_finite(node[1]), _finite(node[2]))
    if kind == "pow":
        return _pow(_finite(node[1]), _finite(node[2]))
    if kind in ("fact", "binom", "sqrt", "abs"):
        return (_integer_function(node), Fraction(0))
    raise NeedSlow


def _finite(node: tuple) -> Gauss:
    value = exact(node)
    if isinstance(value, str):
        raise NeedSlow
    return value


def _finite_fold(items: tuple, op) -> Gauss:
    result = _finite(items[0])
    for item in items[1:]:
        result = op(result, _finite(item))
    return result


def _add(a: Gauss, b: Gauss) -> Gauss:
    return (_check_size(a[0] + b[0]), _check_size(a[1] + b[1]))


def _mul(a: Gauss, b: Gauss) -> Gauss:
    return (_check_size(a[0] * b[0] - a[1] * b[1]), _check_size(a[0] * b[1] + a[1] * b[0]))


def _div(a: Gauss, b: Gauss) -> Gauss:
    norm = b[0] * b[0] + b[1] * b[1]
    if norm == 0:
        raise NeedSlow
    return _mul(a, (b[0] / norm, -b[1] / norm))


def _pow(base: Gauss, exponent: Gauss) -> Gauss:
    e = exponent[0]
    if exponent[1] != 0 or e.denominator != 1:
        raise NeedSlow
    magnitude = max(abs(base[0]), abs(base[1]))
    if magnitude not in (0, 1):
        bits = max(magnitude.numerator.bit_length(), magnitude.denominator.bit_length(), 2)
        if abs(e) * bits > MAX_BITS:
            raise LimitExceeded("power too large")
    if e < 0:
        return _div((Fraction(1), Fraction(0)), _pow(base, (-e, Fraction(0))))
    result, square, n = (Fraction(1), Fraction(0)), base, int(e)
    while n:
        if n & 1:
            result = _mul(result, square)
        n >>= 1
        if n:
            square = _mul(square, square)
    return result


def _real(node: tuple) -> Fraction:
    value = _finite(node)
    if value[1] != 0:
        raise NeedSlow
    return value[0]


def _natural(node: tuple, limit: int) -> int:
    value = _real(node)
    if value.denominator != 1 or value < 0:
        raise NeedSlow
    if value > limit:
        raise LimitExceeded("argument too large")
    return int(value)


def _integer_function(node: tuple) -> Fraction:
    kind = node[0]
    if kind == "fact":
        return Fraction(math.factorial(_natural(node[1], MAX_FACTORIAL)))
    if kind == "binom":
        return Fraction(math.comb(_natural(node[1], MAX_FACTORIAL), _natural(node[2], MAX_FACTORIAL)))
    if kind == "abs":
        return abs(_real(node[1]))
    if node[2] is not None and _real(node[2]) != 2:
        raise NeedSlow
    value = _real(node[1])
    if value < 0:
        raise NeedSlow
    roots = math.isqrt(value.numerator), math.isqrt(value.denominator)
    if roots[0] ** 2 != value.numerator or roots[1] ** 2 != value.denominator:
        raise NeedSlow
    return Fraction(roots[0], roots[1])


def _exact_eq(gold: tuple, pred: tuple) -> bool:
    return exact(gold) == exact(pred)


def _no_equations(gold: tuple, pred: tuple) -> bool:
    raise NeedSlow


def fast_equivalent(gold_tree: tuple, pred_tree: tuple) -> bool:
    """Decide with exact arithmetic; raises NeedSlow when sympy is needed, LimitExceeded on caps."""
    return equivalent(canon(gold_tree), canon(pred_tree), _exact_eq, _no_equations)

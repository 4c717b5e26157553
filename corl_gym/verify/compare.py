"""What counts as equivalent: the structural rules, shared by the fast path and the sympy path.

`canon` turns a parsed answer into one of a few shapes; `equivalent` compares shapes and delegates
single values to a `scalar_eq` callback (exact rational arithmetic in the fast path, sympy in the
worker), so both paths apply exactly the same rules:

- `x = 5` against a bare value is the value 5 (a single-letter side names the answer); two
  equations naming the same letter compare their values, other equations compare as equations
  (`equation_eq`: same variables and proportional sides, so `y = 2x+3` = `2x - y + 3 = 0`).
- A bare comma list (`1, -2`), a set `\\{...\\}` and a value with `\\pm` anywhere in it
  (`\\frac{1 \\pm \\sqrt{5}}{2}`) are unordered collections: order does not matter, multiplicity and
  every element do (missing or extra roots fail).
- Brackets are significant: `(3,4]` is not `(3,4)`, a tuple `(1,2)` is ordered. A bare list matches a
  parenthesised tuple in the same order (models often drop the parentheses), but never a set.
- One-variable inequalities become intervals (`x > 2` = `(2,\\infty)`, `-2 \\le x \\le 7` = `[-2,7]`);
  unions compare as unordered collections of intervals.
- A plain integer against a base-n gold is read in that base (`52` = `52_8`, `42` is not).
- Matrices compare by shape and entry.
- `a \\approx b` stands for its exact left side.
"""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction

ScalarEq = Callable[[tuple, tuple], bool]
INF = ("const", "inf")
NEG_INF = ("neg", INF)
_LOWER = {"<": "(", "<=": "["}
_UPPER = {"<": ")", "<=": "]"}
_FLIP = {">": "<", ">=": "<="}


class NeedSlow(Exception):
    """The fast path cannot decide this pair; the sympy worker must."""


def canon(node: tuple) -> tuple:
    kind = node[0]
    if kind == "list":
        return ("bag", "list", tuple(x for item in node[1] for x in _expand(item)))
    if kind == "set":
        return ("bag", "set", tuple(x for item in node[1] for x in _expand(item)))
    if kind not in ("seq", "mat", "rel", "union") and _has_pm(node):
        return ("bag", "list", tuple(_expand(node)))
    if kind == "rel":
        return _relation(node)
    if kind == "union":
        return ("union", tuple(canon(item) for item in node[1]))
    if kind == "seq":
        return ("seq", node[1], node[2], tuple(canon(item) for item in node[3]))
    if kind == "mat":
        return node
    return ("scalar", node)


def _expand(node: tuple) -> list[tuple]:
    if node[0] not in ("seq", "set", "list", "mat", "rel", "union") and _has_pm(node):
        return [("scalar", _with_sign(node, 1)), ("scalar", _with_sign(node, -1))]
    return [canon(node)]


def _has_pm(x) -> bool:
    return isinstance(x, tuple) and (x[:1] == ("pm",) or any(_has_pm(child) for child in x))


def _with_sign(x, sign: int):
    """`x` with every `a \\pm b` read as `a + b` (sign 1) or `a - b` (sign -1), e.g. the quadratic formula."""
    if not isinstance(x, tuple):
        return x
    if x[:1] == ("pm",):
        right = _with_sign(x[2], sign)
        return ("add", (_with_sign(x[1], sign), right if sign > 0 else ("neg", right)))
    return tuple(_with_sign(child, sign) for child in x)


def _relation(node: tuple) -> tuple:
    ops, exprs = node[1], node[2]
    if ops and ops[0] == "~":  # `\\frac23 \\approx 0.67`: the exact value comes first
        return canon(exprs[0])
    if ops == ("=",):
        left, right = exprs
        named = right if left[0] == "sym" else left if right[0] == "sym" else None
        return ("eq", left, right, named)
    if ops == ("!=",) and exprs[0][0] == "sym":  # `x \\ne 2` is everything but 2
        point = ("scalar", exprs[1])
        return ("union", (("seq", "(", ")", (("scalar", NEG_INF), point)), ("seq", "(", ")", (point, ("scalar", INF)))))
    interval = _interval(ops, exprs)
    return interval if interval is not None else ("rel", ops, exprs)


def _interval(ops: tuple, exprs: tuple) -> tuple | None:
    """A one-variable inequality as a ('seq', open, close, (lo, hi)) interval, else None."""
    if not all(op in ("<", "<=", ">", ">=") for op in ops):
        return None
    if ops[0] in _FLIP:  # read `a > x > b` as `b < x < a`
        if not all(op in _FLIP for op in ops):
            return None
        ops, exprs = tuple(_FLIP[op] for op in reversed(ops)), tuple(reversed(exprs))
    if not all(op in ("<", "<=") for op in ops):
        return None
    if len(exprs) == 2 and exprs[0][0] == "sym":
        return ("seq", "(", _UPPER[ops[0]], (("scalar", NEG_INF), ("scalar", exprs[1])))
    if len(exprs) == 2 and exprs[1][0] == "sym":
        return ("seq", _LOWER[ops[0]], ")", (("scalar", exprs[0]), ("scalar", INF)))
    if len(exprs) == 3 and exprs[1][0] == "sym":
        return ("seq", _LOWER[ops[0]], _UPPER[ops[1]], (("scalar", exprs[0]), ("scalar", exprs[2])))
    return None


def _unwrap(shape: tuple) -> tuple:
    if shape[0] == "bag" and len(shape[2]) == 1:
        return shape[2][0]
    if shape[0] == "union" and len(shape[1]) == 1:
        return shape[1][0]
    return shape


def equivalent(gold: tuple, pred: tuple, scalar_eq: ScalarEq, equation_eq: ScalarEq) -> bool:
    """Whether two canonical shapes are the same answer (see the module docstring)."""
    gold, pred = _unwrap(gold), _unwrap(pred)
    if (gold[0] == "eq") != (pred[0] == "eq"):  # `x = 5` against a bare value: compare the value
        gold, pred = _named_value(gold), _named_value(pred)
    same = lambda a, b: equivalent(a, b, scalar_eq, equation_eq)  # noqa: E731
    kinds = (gold[0], pred[0])
    if kinds == ("scalar", "scalar"):
        return _scalar(gold[1], pred[1], scalar_eq)
    if kinds == ("bag", "bag"):
        return _same_multiset(gold[2], pred[2], same)
    if kinds in (("bag", "seq"), ("seq", "bag")):
        bag, seq = (gold, pred) if gold[0] == "bag" else (pred, gold)
        ordered_ok = bag[1] == "list" and seq[1:3] == ("(", ")")
        return ordered_ok and _same_sequence(bag[2], seq[3], same)
    if kinds == ("seq", "seq"):
        return gold[1:3] == pred[1:3] and _same_sequence(gold[3], pred[3], same)
    if kinds == ("union", "union"):
        return _same_multiset(gold[1], pred[1], same)
    if kinds == ("mat", "mat"):
        rows_g, rows_p = gold[1], pred[1]
        shape_ok = len(rows_g) == len(rows_p) and len(rows_g[0]) == len(rows_p[0])
        return shape_ok and all(_scalar(a, b, scalar_eq) for rg, rp in zip(rows_g, rows_p) for a, b in zip(rg, rp))
    if kinds == ("eq", "eq"):
        if gold[3] is not None and pred[3] is not None and _same_name(gold, pred):
            return _scalar(gold[3], pred[3], scalar_eq)
        return equation_eq(gold, pred)
    if kinds == ("rel", "rel"):
        return gold[1] == pred[1] and all(_scalar(a, b, scalar_eq) for a, b in zip(gold[2], pred[2]))
    return False


def _named_value(shape: tuple) -> tuple:
    return _unwrap(canon(shape[3])) if shape[0] == "eq" and shape[3] is not None else shape


def _same_name(gold: tuple, pred: tuple) -> bool:
    name = lambda eq: eq[1] if eq[2] is eq[3] else eq[2]  # noqa: E731
    return name(gold) == name(pred)


def _scalar(gold: tuple, pred: tuple, scalar_eq: ScalarEq) -> bool:
    if gold[0] == "basen" and pred[0] == "num" and pred[2].isdigit():
        digits, base = gold[1], gold[2]
        if all(int(d, 36) < base for d in pred[2]):
            return int(pred[2], base) == int(digits, base)
        return False
    return scalar_eq(_plain(gold), _plain(pred))


def _plain(node: tuple) -> tuple:
    if node[0] == "basen":
        return ("num", Fraction(int(node[1], node[2])), node[1])
    return node


def _same_sequence(golds: tuple, preds: tuple, same: Callable) -> bool:
    return len(golds) == len(preds) and all(same(a, b) for a, b in zip(golds, preds))


def _same_multiset(golds: tuple, preds: tuple, same: Callable) -> bool:
    # Equivalence is transitive, so greedy matching finds a perfect matching whenever one exists.
    if len(golds) != len(preds):
        return False
    left = list(preds)
    for gold in golds:
        hit = next((k for k, pred in enumerate(left) if same(gold, pred)), None)
        if hit is None:
            return False
        left.pop(hit)
    return True

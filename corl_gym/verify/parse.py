r"""A small, bounded parser from normalised answer LaTeX to a tuple AST.

This replaces `sympify`/`parse_expr` for untrusted text: it only ever builds the node kinds below,
never evaluates anything, and refuses input past fixed caps (tokens, nesting depth, digits), so it
runs safely in the caller's thread. Node kinds (first element of each tuple):

    num (Fraction, raw)  sym name  const pi|e|i|inf  add items  mul items  neg x  div a b  pow a b
    sqrt x n  fact x  binom a b  abs x  func name x  pm a b  basen digits base
    seq open close items  set items  list items  mat rows  rel ops exprs  union items

Decisions: juxtaposition multiplies (two number literals side by side are refused), except an
integer written directly before `\frac{int}{int}`, which is a mixed number (`1\frac{4}{5}` = 9/5).
`e` and `i` are Euler's number and the imaginary unit. `!` binds tighter than `^` (`24!^2` =
(24!)^2). `\frac43` and `\sqrt2` take one character. `a:b` is a ratio (a/b), `a \approx b` a relation.

Tokens, number literals, the token and digit caps and the two errors are in `corl_gym.verify.tokens`.
"""

from __future__ import annotations

from fractions import Fraction

from .tokens import LimitExceeded, ParseError, number, tokenize

__all__ = ["parse", "ParseError", "LimitExceeded", "MAX_DEPTH"]  # the errors are re-exported: parse raises them

MAX_DEPTH = 120

_FUNCS = {"sin", "cos", "tan", "cot", "sec", "csc", "ln", "log", "exp", "arcsin", "arccos", "arctan",
          "sinh", "cosh", "tanh"}
_RELOPS = {"=": "=", "<": "<", ">": ">", "<=": "<=", ">=": ">=", "!=": "!=",
           "\\le": "<=", "\\ge": ">=", "\\ne": "!=", "\\approx": "~"}
_GREEK = {"alpha", "beta", "gamma", "delta", "epsilon", "varepsilon", "zeta", "eta", "theta", "vartheta",
          "kappa", "lambda", "mu", "nu", "xi", "rho", "sigma", "tau", "phi", "varphi", "chi", "psi", "omega"}
#: Wrappers that only change the font: their content is parsed as if they were not there.
_TRANSPARENT = {"\\text", "\\textbf", "\\mathbf", "\\mathrm", "\\textnormal", "\\mbox", "\\boldsymbol"}
_IMPLICIT_CMDS = ({"\\frac", "\\sqrt", "\\pi", "\\binom", "\\infty"} | {"\\" + f for f in _FUNCS}
                  | {"\\" + g for g in _GREEK} | _TRANSPARENT)


def parse(text: str) -> tuple:
    """Parse one normalised answer; raises ParseError or LimitExceeded."""
    parser = _Parser(tokenize(text))
    if not parser.tokens:
        raise ParseError("empty answer")
    try:
        tree = parser.top()
    except RecursionError:  # MAX_DEPTH counts groups, not frames: a deep caller's stack can run out first
        raise LimitExceeded("nesting too deep") from None
    if parser.pos != len(parser.tokens):
        raise ParseError(f"unexpected {parser.peek()[1]!r}")
    return tree


class _Parser:
    def __init__(self, tokens: list[tuple[str, str]]) -> None:
        self.tokens, self.pos, self.depth = tokens, 0, 0

    def peek(self, ahead: int = 0) -> tuple[str, str]:
        k = self.pos + ahead
        return self.tokens[k] if k < len(self.tokens) else ("end", "")

    def take(self) -> tuple[str, str]:
        # Consuming past the end is always a syntax error; raising here (rather than handing back an
        # "end" token) guarantees that every loop which takes a token per turn terminates.
        token = self.peek()
        if token[0] == "end":
            raise ParseError("unexpected end of answer")
        self.pos += 1
        return token

    def expect(self, value: str) -> None:
        if self.take()[1] != value:
            raise ParseError(f"expected {value!r}")

    def at(self, *values: str) -> bool:
        return self.peek()[1] in values and self.peek()[0] != "end"

    def nested(self, method, *args):
        # Depth is checked explicitly so 10k nested braces fail fast instead of hitting recursion limits.
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise LimitExceeded("nesting too deep")
        try:
            return method(*args)
        finally:
            self.depth -= 1

    # --- grammar, loosest binding first ---------------------------------------------------------

    def top(self) -> tuple:
        items = [self.union()]
        while self.at(",", ";"):
            self.take()
            items.append(self.union())
        return items[0] if len(items) == 1 else ("list", tuple(items))

    def union(self) -> tuple:
        items = [self.relation()]
        while self.at("\\cup"):
            self.take()
            items.append(self.relation())
        return items[0] if len(items) == 1 else ("union", tuple(items))

    def relation(self) -> tuple:
        exprs, ops = [self.ratio()], []
        while self.peek()[1] in _RELOPS and self.peek()[0] in ("op", "cmd"):
            ops.append(_RELOPS[self.take()[1]])
            exprs.append(self.ratio())
        return ("rel", tuple(ops), tuple(exprs)) if ops else exprs[0]

    def ratio(self) -> tuple:
        """`a:b` is the quotient a/b (`1:4` = `2:8` = `1/4`); longer chains (clock times) are refused."""
        left = self.expr()
        if not self.at(":"):
            return left
        self.take()
        right = self.expr()
        if self.at(":"):
            raise ParseError("ratio of more than two parts")
        return ("div", left, right)

    def expr(self) -> tuple:
        terms: list[tuple] = []
        sign = self._sign()
        if sign == "pm":
            return ("pm", ("num", Fraction(0), "0"), self.nested(self.expr))
        while True:
            term = self.term()
            terms.append(("neg", term) if sign == "-" else term)
            if self.at("\\pm"):
                self.take()
                left = terms[0] if len(terms) == 1 else ("add", tuple(terms))
                return ("pm", left, self.nested(self.expr))
            if not self.at("+", "-"):
                break
            sign = self.take()[1]
        return terms[0] if len(terms) == 1 else ("add", tuple(terms))

    def _sign(self) -> str:
        if self.at("+"):
            self.take()
        if self.at("-"):
            self.take()
            return "-"
        if self.at("\\pm"):
            self.take()
            return "pm"
        return "+"

    def term(self) -> tuple:
        first_is_int = self.peek()[0] == "num" and self.peek()[1].isdigit()
        factors = [self.power()]
        while True:
            if self.at("*", "\\times", "\\cdot"):
                self.take()
                factors.append(self.power())
            elif self.at("/", "\\div"):
                self.take()
                left = factors[0] if len(factors) == 1 else ("mul", tuple(factors))
                factors = [("div", left, self.power())]
            elif self.peek()[0] == "num" and self.tokens[self.pos - 1][0] == "num":
                # `2 3` renders as 23 but reads as 2*3: ambiguous, so refused rather than guessed.
                raise LimitExceeded("two numbers side by side")
            elif self._starts_factor():
                mixed = first_is_int and len(factors) == 1 and self.at("\\frac")
                factor = self.power()
                if mixed and factor[0] == "div" and all(_is_int_literal(x) for x in factor[1:]):
                    factors = [("add", (factors[0], factor))]
                else:
                    factors.append(factor)
            else:
                break
        return factors[0] if len(factors) == 1 else ("mul", tuple(factors))

    def _starts_factor(self) -> bool:
        kind, value = self.peek()
        return kind in ("num", "sym") or value == "(" or (kind == "cmd" and value in _IMPLICIT_CMDS)

    def power(self) -> tuple:
        base = self.nested(self.atom)
        while self.at("!"):
            self.take()
            base = ("fact", base)
        if self.at("^"):
            self.take()
            sign = self._sign()
            exponent = self.nested(self.power)
            base = ("pow", base, ("neg", exponent) if sign == "-" else exponent)
        return base

    def atom(self) -> tuple:
        kind, value = self.take()
        if kind == "num":
            return self._number(value)
        if kind == "sym":
            return self._symbol(value)
        if value in ("(", "["):
            return self._bracketed(value)
        if value == "{":
            inner = self.top()
            self.expect("}")
            return inner
        if value == "\\{":
            return self._set()
        if value == "|":
            inner = self.expr()
            self.expect("|")
            return ("abs", inner)
        if kind == "cmd":
            return self._command(value)
        raise ParseError(f"unexpected {value!r}")

    def _number(self, raw: str) -> tuple:
        repeating = ""
        if self.at("\\overline"):
            self.take()
            repeating = self._raw_digits()
        elif "." in raw and self.at("(") and self.peek(1)[1].isdigit() and self.peek(2)[1] == ")":
            self.take()  # `0.(3)`: the other common way to write a repeating decimal
            repeating = self.take()[1]
            self.take()
        node = number(raw, repeating)
        if self.at("_") and raw.isdigit():
            self.take()
            base = self._raw_digits()
            if not (2 <= int(base) <= 36 and all(int(d, 36) < int(base) for d in raw)):
                raise ParseError("bad base-n numeral")
            return ("basen", raw, int(base))
        return node

    def _raw_digits(self) -> str:
        braced = self.at("{")
        if braced:
            self.take()
        kind, value = self.take()
        if kind != "num" or not value.isdigit():
            raise ParseError("expected digits")
        if braced:
            self.expect("}")
        return value

    def _symbol(self, name: str) -> tuple:
        if self.at("_"):
            self.take()
            sub = self.take() if not self.at("{") else self._braced_name()
            return ("sym", f"{name}_{sub[1]}")
        return {"e": ("const", "e"), "i": ("const", "i")}.get(name, ("sym", name))

    def _braced_name(self) -> tuple[str, str]:
        self.expect("{")
        parts = []
        while not self.at("}"):
            parts.append(self.take()[1])
        self.expect("}")
        return ("name", "".join(parts))

    def _bracketed(self, opener: str) -> tuple:
        items = [self.union()]
        while self.at(","):
            self.take()
            items.append(self.union())
        closer = self.take()[1]
        if closer not in (")", "]"):
            raise ParseError("unclosed bracket")
        if len(items) == 1 and (opener + closer) in ("()", "[]"):
            return items[0]
        return ("seq", opener, closer, tuple(items))

    def _set(self) -> tuple:
        items = []
        while not self.at("\\}"):
            items.append(self.union())
            if self.at(","):
                self.take()
            elif not self.at("\\}"):
                raise ParseError("bad set")
        self.take()
        return ("set", tuple(items))

    def _argument(self) -> tuple:
        kind, value = self.peek()
        if value == "{":
            self.take()
            inner = self.nested(self.top)
            self.expect("}")
            return inner
        if kind == "num" and len(value) > 1:
            # `\frac43`: a LaTeX argument without braces is one character. `\frac1.5` or `\frac1e5`
            # would leave a stray `.5` or `e5` behind: refused, the slower path reads it as LaTeX does.
            if not value.isdigit():
                raise ParseError("unbraced argument that is not a digit")
            self.tokens[self.pos] = ("num", value[1:])
            return number(value[0])
        return self.nested(self.atom)

    def _command(self, name: str) -> tuple:
        if name == "\\frac":
            return ("div", self._argument(), self._argument())
        if name == "\\binom":
            return ("binom", self._argument(), self._argument())
        if name == "\\sqrt":
            index = None
            if self.at("["):
                self.take()
                index = self.expr()
                self.expect("]")
            return ("sqrt", self._argument(), index)
        if name == "\\pi":
            return ("const", "pi")
        if name == "\\infty":
            return ("const", "inf")
        if name == "\\begin":
            return self._matrix()
        if name[1:] in _GREEK:
            return ("sym", name[1:])
        if name in _TRANSPARENT:
            return self._argument()
        if name[1:] in _FUNCS:
            return self._function(name[1:])
        raise ParseError(f"unknown command {name}")

    def _function(self, name: str) -> tuple:
        exponent = None
        if self.at("^"):
            self.take()
            exponent = self._argument()
        if name == "log" and self.at("_"):
            self.take()
            base = self._argument()
            node = ("div", ("func", "ln", self.power()), ("func", "ln", base))
        else:
            node = ("func", name, self.power())
        return ("pow", node, exponent) if exponent is not None else node

    def _matrix(self) -> tuple:
        env = self._braced_name()[1]
        if env not in ("pmatrix", "matrix", "array"):
            raise ParseError(f"unknown environment {env}")
        if env == "array" and self.at("{"):
            self._braced_name()
        rows, row = [], [self.expr()]
        while not self.at("\\end"):
            kind, value = self.take()
            if value == "&":
                row.append(self.expr())
            elif kind == "row":
                rows.append(tuple(row))
                row = [] if self.at("\\end") else [self.expr()]
            else:
                raise ParseError("bad matrix")
        self.take()
        self._braced_name()
        if row:
            rows.append(tuple(row))
        if len({len(r) for r in rows}) != 1:
            raise ParseError("ragged matrix")
        return ("mat", tuple(rows))


def _is_int_literal(node: tuple) -> bool:
    return node[0] == "num" and node[1].denominator == 1 and node[1] >= 0

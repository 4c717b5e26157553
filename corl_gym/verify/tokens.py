r"""The lexical layer of the answer parser: size caps, the two refusal errors, tokens, number literals.

Everything the parser (`corl_gym.verify.parse`) reads goes through `tokenize` first, so the token
cap here bounds the work of every later step. Number literals become exact `Fraction`s (`number`),
never floats, so `0.1` is 1/10 and a repeating decimal `0.\overline{3}` is 1/3.
"""

from __future__ import annotations

import re
from fractions import Fraction

MAX_TOKENS = 400
MAX_DIGITS = 200


class ParseError(ValueError):
    """Syntax this parser does not know; a slower parser may still understand it."""


class LimitExceeded(ValueError):
    """Input past a safety cap (size, depth, magnitude): refused, never handed to a slower path."""


_NUMBER_PATTERN = r"\d+(?:\.\d*)?(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?"
_NUMBER = re.compile(_NUMBER_PATTERN)
_TOKEN = re.compile(
    rf"\s*(?:(?P<num>{_NUMBER_PATTERN})"
    r"|(?P<cmd>\\[A-Za-z]+|\\[{}|])|(?P<row>\\\\)|(?P<sym>[A-Za-z])"
    r"|(?P<op><=|>=|!=|[-+*/^_()\[\]{},=<>!|&;:]))"
)


def tokenize(text: str) -> list[tuple[str, str]]:
    """(kind, text) tokens of one answer; kinds are num, cmd, row, sym and op."""
    tokens, pos = [], 0
    text = text.rstrip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None or match.end() == pos:
            raise ParseError(f"unexpected character {text[pos]!r}")
        pos = match.end()
        kind = match.lastgroup
        tokens.append((kind, match.group(kind)))
        if len(tokens) > MAX_TOKENS:
            raise LimitExceeded("too many tokens")
    return tokens


def number(raw: str, repeating: str = "") -> tuple:
    """The `num` node of a literal, with `repeating` digits (`\\overline{3}`) added when given."""
    if _NUMBER.fullmatch(raw) is None or (repeating and not repeating.isdigit()):
        raise ParseError(f"not a number: {raw[:20]!r}")
    digits = raw.lower().split("e")
    if len(digits[0]) > MAX_DIGITS or (len(digits) > 1 and abs(int(digits[1])) > 400):
        raise LimitExceeded("number too long")
    value = Fraction(raw)
    if repeating:
        decimals = len(digits[0].split(".")[1]) if "." in digits[0] else 0
        value += Fraction(int(repeating), (10 ** len(repeating) - 1) * 10**decimals)
    return ("num", value, raw + (f"({repeating})" if repeating else ""))

"""Spaces for text and token observations and actions.

Gymnasium's `Text` space checks every character against a finite charset, but an LLM's context holds any
Unicode an expert or the controller wrote. `UnicodeText` is a `Text` whose `contains` accepts every
string within the length bounds; it samples from printable ASCII plus the grammar's tags, so that
`check_env` and random agents exercise the parser with something other than noise.
"""

from __future__ import annotations

import string
from typing import Any

import numpy as np
from gymnasium.spaces import Discrete, Sequence, Text

_SAMPLE_CHARSET = frozenset(string.ascii_letters + string.digits + string.punctuation + " \n")


class UnicodeText(Text):
    """Any `str` of length `min_length..max_length`; samples are printable ASCII."""

    def __init__(self, max_length: int, *, min_length: int = 0, seed: int | np.random.Generator | None = None):
        super().__init__(max_length, min_length=min_length, charset=_SAMPLE_CHARSET, seed=seed)

    def contains(self, x: Any) -> bool:
        return isinstance(x, str) and self.min_length <= len(x) <= self.max_length

    def sample(self, mask: Any = None, probability: Any = None) -> str:
        # Sampling up to max_length (hundreds of thousands) characters would be slow and useless; draw
        # short strings, now and then wrapped in a grammar tag.
        length = int(self.np_random.integers(self.min_length, min(self.max_length, 64) + 1))
        chars = sorted(self.character_set)
        body = "".join(chars[i] for i in self.np_random.integers(len(chars), size=length))
        wrap = int(self.np_random.integers(4))
        if wrap == 1:
            return f"<answer>{body}</answer>"[: self.max_length]
        if wrap == 2:
            return f'<call expert="{body[:8]}">{body}</call>'[: self.max_length]
        return body

    def __repr__(self) -> str:
        return f"UnicodeText({self.min_length}, {self.max_length})"

    def __eq__(self, other: Any) -> bool:
        return (
            isinstance(other, UnicodeText)
            and self.min_length == other.min_length
            and self.max_length == other.max_length
        )


def token_space(vocab_size: int, seed: int | None = None) -> Sequence:
    """A variable-length sequence of token ids, stacked into one int64 array."""
    return Sequence(Discrete(vocab_size), seed=seed, stack=True)

"""`Problem`: one math problem, the unit every data set, expert and env deals in (its own module so that
the problem generators and loaders can share it without importing each other)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Problem:
    """One math problem: an episode of `CORL-Math-v0`.

    `answer` is the gold final answer as the source gives it (LaTeX or plain).
    `level` is a 1-5 difficulty when known (MATH levels; synthetic levels); `None` otherwise.
    """

    id: str
    problem: str
    answer: str
    level: int | None = None
    subject: str | None = None
    dataset: str | None = None
    extra: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

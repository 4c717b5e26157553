"""Numeric problem features for routers: what a router may know about a problem before asking anyone.

`problem_features(problem)` is the default feature function of `CORL-Routing-v0` and of the learned
baseline routers. Any callable `Problem -> 1-D float array` of fixed length can replace it (an embedding
model, say); `FeatureFunction.size` tells the env the length.

Default features (all in [0, 1]):
- length of the statement (characters / 2000, clipped) and its share of digits;
- level one-hot (1-5, unknown);
- subject: one of 16 buckets by a stable hash of the subject name, or "unknown" (no fixed subject list,
  so MATH subjects and the synthetic families both work);
- keyword flags: terms that mark problem types of different difficulty.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable
from typing import Protocol

import numpy as np

from corl_gym.data import Problem

KEYWORDS: tuple[str, ...] = (
    "how many", "probability", "prove", "integer", "triangle", "circle", "polynomial", "remainder",
    "sum", "\\frac", "\\sqrt", "sequence", "matrix", "complex", "maximum", "minimum",
)
SUBJECT_BUCKETS = 16
LEVELS = 5


class FeatureFunction(Protocol):
    size: int

    def __call__(self, problem: Problem) -> np.ndarray: ...


@functools.lru_cache(maxsize=1024)
def _subject_bucket(subject: str) -> int:
    return int(hashlib.md5(subject.strip().lower().encode("utf-8")).hexdigest(), 16) % SUBJECT_BUCKETS


_LEVEL_AT, _SUBJECT_AT = 2, 2 + LEVELS + 1
_KEYWORDS_AT = _SUBJECT_AT + SUBJECT_BUCKETS + 1


def _problem_features(problem: Problem) -> np.ndarray:
    text = problem.problem
    lower = text.lower()
    values = [0.0] * (_KEYWORDS_AT + len(KEYWORDS))  # one list, one array: this runs once per problem and env
    values[0] = min(len(text) / 2000.0, 1.0)
    # ASCII text (the usual case) has no digits but 0-9, counted by C loops; others take each character's test.
    digits = sum(map(text.count, "0123456789")) if text.isascii() else sum(map(str.isdigit, text))
    values[1] = digits / max(len(text), 1)
    values[_LEVEL_AT + ((problem.level - 1) if problem.level in range(1, LEVELS + 1) else LEVELS)] = 1.0
    values[_SUBJECT_AT + (_subject_bucket(problem.subject) if problem.subject else SUBJECT_BUCKETS)] = 1.0
    for index, keyword in enumerate(KEYWORDS):
        if keyword in lower:
            values[_KEYWORDS_AT + index] = 1.0
    return np.array(values, dtype=np.float32)


def _with_size(function: Callable[[Problem], np.ndarray], size: int) -> FeatureFunction:
    function.size = size  # type: ignore[attr-defined]
    return function  # type: ignore[return-value]


problem_features: FeatureFunction = _with_size(_problem_features, _KEYWORDS_AT + len(KEYWORDS))
_NONE = np.zeros(0, dtype=np.float32)
no_features: FeatureFunction = _with_size(lambda problem: _NONE, 0)
# Feature functions by name, for configs and saved routers: `none` leaves the router only what it observes
# of budgets, costs and answers (where every problem looks alike, features only help it memorise).
FEATURES: dict[str, FeatureFunction] = {"problem": problem_features, "none": no_features}


def feature_size(function: Callable[[Problem], np.ndarray]) -> int:
    """The length of a feature function's output (its `size` attribute, else measured once)."""
    size = getattr(function, "size", None)
    if size is None:
        size = int(np.asarray(function(Problem("probe", "What is 1 + 1?", "2"))).reshape(-1).shape[0])
    return int(size)

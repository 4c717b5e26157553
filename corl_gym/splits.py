"""Train/test splits of problem sets, shared by learners and the benchmark."""

from __future__ import annotations

import hashlib
from typing import Sequence

from corl_gym.data import Problem


def split_problems(problems: Sequence[Problem], test_fraction: float = 0.5) -> tuple[list[Problem], list[Problem]]:
    """(train, test) by a stable hash of each id: a problem stays on its side whatever else is loaded,
    on every machine, so a router trained on `train` is never evaluated on its own training problems."""
    if not 0.0 < test_fraction <= 1.0:
        raise ValueError(f"test_fraction must be in (0, 1], got {test_fraction}")
    train, test = [], []
    for problem in problems:
        bucket = int(hashlib.sha1(problem.id.encode("utf-8")).hexdigest()[:8], 16) / 16**8
        (test if bucket < test_fraction else train).append(problem)
    return train, test

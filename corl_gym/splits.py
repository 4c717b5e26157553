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


def require_part(dataset: str, problems: Sequence[Problem], test_fraction: float, *parts: str) -> tuple[list[Problem], list[Problem]]:
    """`split_problems`, or a ValueError naming the dataset and the split sizes when one of `parts`
    (`"train"`, `"test"`) is empty: a run on no problems would print an empty table and exit 0."""
    train, test = split_problems(problems, test_fraction)
    for part in parts:
        if not (train if part == "train" else test):
            fix = "a smaller" if part == "train" else "a larger"
            raise ValueError(f"dataset {dataset!r} has no {part} problems ({len(problems)} problems: {len(train)} train, "
                             f"{len(test)} test at test fraction {test_fraction:g}); use a larger dataset or {fix} "
                             "--test-fraction")
    return train, test

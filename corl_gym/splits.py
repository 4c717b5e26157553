"""Train/test splits of problem sets: the one place learners, evaluators and the benchmark take their
problems from, so a policy is never evaluated on a problem it was trained on."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

from corl_gym.data import Problem, load_problems

PARTS = ("train", "test")


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


def require_part(dataset: str, problems: Sequence[Problem], test_fraction: float,
                 *parts: str) -> tuple[list[Problem], list[Problem]]:
    """`split_problems`, or a ValueError naming the dataset and the split sizes when one of `parts`
    (`"train"`, `"test"`) is empty: a run on no problems would print an empty table and exit 0."""
    train, test = split_problems(problems, test_fraction)
    for part in parts:
        if not (train if part == "train" else test):
            fix = "a smaller" if part == "train" else "a larger"
            raise ValueError(f"dataset {dataset!r} has no {part} problems ({len(problems)} problems: "
                             f"{len(train)} train, {len(test)} test at test fraction {test_fraction:g}); "
                             f"use a larger dataset or {fix} --test-fraction")
    return train, test


def has_integer_answer(problem: Problem) -> bool:
    """The gold answer is an integer of at most 3 digits (one token for the tiny controller's tokenizer)."""
    return re.fullmatch(r"-?\d{1,3}", problem.answer.strip()) is not None


def select_problems(dataset: str, part: str, test_fraction: float = 0.5, integer_answers: bool = False,
                    limit: int | None = None, *, required: bool = False) -> list[Problem]:
    """The `train` or `test` part of a dataset (its first `limit`; all when `limit` is 0 or None),
    optionally only problems with `has_integer_answer`. `required`: a ValueError naming the split sizes
    when the part is empty (`require_part`), before any filter."""
    if part not in PARTS:
        raise ValueError(f"part must be one of {', '.join(PARTS)}, got {part!r}")
    problems = load_problems(dataset)
    if required:
        train, test = require_part(dataset, problems, test_fraction, part)
    else:
        train, test = split_problems(problems, test_fraction)
    selected = train if part == "train" else test
    if integer_answers:
        selected = [p for p in selected if has_integer_answer(p)]
    return selected[:limit] if limit else selected

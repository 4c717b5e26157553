"""Budget modes, dollar thresholds and the budget penalty of the reward.

The paper's reward is `r = correct * 1[cost <= B]`: a correct answer over budget earns 0 (`hard`, the
default). Two smoother options help exploration or analysis:

- `soft`:   correct * exp(-decay * max(cost / B - 1, 0)): full reward within budget, then a smooth decay.
- `linear`: correct - weight * cost / max(B, min_scale_usd): every dollar counts, not only those past the
  threshold, and every ending pays its spend. A correct answer earns 1 - weight * cost / scale; a wrong
  answer, and an episode truncated without an answer, earn -weight * cost / scale (the env passes
  `correct=False` on truncation), so stalling never beats answering. The scale is bounded below by
  `min_scale_usd` (default $0.0001): with a tiny or $0 threshold a cheap call would otherwise cost
  more than any answer can earn.

Under `hard` and `soft` a wrong answer and a truncation earn 0.

A budget is a mode of the pool (`low`, `medium`, `high`, thresholds in the pool file), `mixed` (a mode
drawn per episode from the env's `np_random`), or a float in dollars (its mode is reported as `custom`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import NamedTuple

import numpy as np

BUDGET_MODES: tuple[str, ...] = ("low", "medium", "high")
MIXED = "mixed"
CUSTOM = "custom"
PENALTIES: tuple[str, ...] = ("hard", "soft", "linear")


class Budget(NamedTuple):
    """The budget of one episode: its mode name and its dollar threshold per query."""

    mode: str
    threshold_usd: float


@dataclass(frozen=True)
class BudgetSpec:
    """What the env was asked for: a fixed mode, `mixed`, or a dollar amount; resolved per episode."""

    value: str | float
    thresholds: Mapping[str, float]

    def __post_init__(self) -> None:
        validate_budget(self.value, self.thresholds)

    @property
    def modes(self) -> tuple[str, ...]:
        """The modes an episode can get, in threshold order (low to high)."""
        if self.value == MIXED:
            return self._mixed_modes
        return (self.value if isinstance(self.value, str) else CUSTOM,)

    def draw(self, rng: np.random.Generator, mode: str | float | None = None) -> Budget:
        """This episode's budget: `mode` overrides (from `reset(options={"budget": ...})`)."""
        value = self.value if mode is None else mode
        if mode is not None:
            validate_budget(value, self.thresholds)
        if value == MIXED:
            modes = self._mixed_modes
            value = modes[int(rng.integers(len(modes)))]
        if isinstance(value, str):
            return self._mode_budgets[value]
        return Budget(CUSTOM, float(value))

    # Worked out once: a reset draws a budget every episode, and the pool's thresholds are fixed.
    @cached_property
    def _mixed_modes(self) -> tuple[str, ...]:
        return tuple(sorted(self.thresholds, key=self.thresholds.__getitem__))

    @cached_property
    def _mode_budgets(self) -> dict[str, Budget]:
        return {mode: Budget(mode, float(threshold)) for mode, threshold in self.thresholds.items()}


def validate_budget(value: object, thresholds: Mapping[str, float]) -> None:
    """Raise a ValueError that lists the valid choices when `value` is not a budget of this pool."""
    if isinstance(value, bool):
        raise ValueError(f"budget must be a mode name or a dollar amount, got {value!r}")
    if isinstance(value, (int, float)):
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"a dollar budget must be a finite amount >= 0, got {value!r}")
        return
    if value != MIXED and value not in thresholds:
        valid = ", ".join([*thresholds, MIXED])
        raise ValueError(f"unknown budget {value!r}: use one of {valid}, or a dollar amount such as 0.005")


# Dollar sums are float sums: a cost that equals the threshold up to rounding is within it.
BUDGET_TOLERANCE_USD = 1e-12


def within_budget(cost_usd: float | np.ndarray, threshold_usd: float | np.ndarray) -> bool | np.ndarray:
    """Whether `cost_usd` is within `threshold_usd` (the paper's gate `cost <= B`, up to float rounding).
    The one affordability test of the package: rewards, `over_budget`, the routing env's masks, routers,
    labels and spend caps use it. NumPy arrays broadcast (a bool array), as routers' label tables need."""
    return cost_usd <= threshold_usd + BUDGET_TOLERANCE_USD


def budget_penalty(cost_usd: float, threshold_usd: float, penalty: str = "hard", *, decay: float = 2.0) -> float:
    """The factor a correct answer's reward is multiplied by (`hard` and `soft`)."""
    if penalty == "hard":
        return 1.0 if within_budget(cost_usd, threshold_usd) else 0.0
    if penalty == "soft":
        if threshold_usd <= 0:
            return 1.0 if cost_usd <= 0 else 0.0
        return math.exp(-decay * max(cost_usd / threshold_usd - 1.0, 0.0))
    raise ValueError(f"unknown penalty {penalty!r}: use one of {', '.join(PENALTIES)}")


def reward(
    correct: bool,
    cost_usd: float,
    threshold_usd: float,
    penalty: str = "hard",
    *,
    decay: float = 2.0,
    weight: float = 0.5,
    min_scale_usd: float = 1e-4,
) -> float:
    """The final-step reward: correctness combined with the budget penalty (`correct=False` for an episode
    that ends without an answer)."""
    if penalty == "linear":
        return float(correct) - weight * cost_usd / max(threshold_usd, min_scale_usd)
    return float(correct) * budget_penalty(cost_usd, threshold_usd, penalty, decay=decay)


def validate_penalty(penalty: str) -> None:
    if penalty not in PENALTIES:
        raise ValueError(f"unknown penalty {penalty!r}: use one of {', '.join(PENALTIES)}")

import math

import numpy as np
import pytest

from corl_gym.budget import Budget, BudgetSpec, budget_penalty, reward

THRESHOLDS = {"low": 0.001, "medium": 0.01, "high": 0.05}


def test_hard_gate_is_the_paper_reward():
    assert reward(True, 0.0009, 0.001) == 1.0
    assert reward(True, 0.001, 0.001) == 1.0
    assert reward(True, 0.0011, 0.001) == 0.0
    assert reward(False, 0.0, 0.001) == 0.0


def test_soft_and_linear_penalties():
    assert reward(True, 0.0005, 0.001, "soft") == 1.0
    assert reward(True, 0.002, 0.001, "soft", decay=2.0) == pytest.approx(math.exp(-2.0))
    assert reward(True, 0.0005, 0.001, "linear", weight=0.5) == pytest.approx(0.75)
    assert reward(False, 0.001, 0.001, "linear", weight=0.5) == pytest.approx(-0.5)
    with pytest.raises(ValueError, match="hard, soft, linear"):
        budget_penalty(0.0, 1.0, "steep")


def test_fixed_mixed_and_dollar_budgets():
    rng = np.random.default_rng(0)
    assert BudgetSpec("low", THRESHOLDS).draw(rng) == Budget("low", 0.001)
    assert BudgetSpec(0.02, THRESHOLDS).draw(rng) == Budget("custom", 0.02)
    drawn = {BudgetSpec("mixed", THRESHOLDS).draw(rng).mode for _ in range(100)}
    assert drawn == {"low", "medium", "high"}
    assert BudgetSpec("mixed", THRESHOLDS).modes == ("low", "medium", "high")
    assert BudgetSpec("mixed", THRESHOLDS).draw(rng, "high") == Budget("high", 0.05)


@pytest.mark.parametrize("bad", ["cheap", -1.0, float("nan"), True])
def test_bad_budgets_list_the_valid_ones(bad):
    with pytest.raises(ValueError) as error:
        BudgetSpec(bad, THRESHOLDS)
    if bad == "cheap":
        assert "low, medium, high, mixed" in str(error.value)


def test_linear_every_ending_pays_its_spend_with_a_bounded_scale():
    # correct: 1 - w * cost / B; wrong (and, in the env, truncated): -w * cost / B
    assert reward(True, 0.002, 0.001, "linear", weight=0.5) == pytest.approx(0.0)
    assert reward(False, 0.002, 0.001, "linear", weight=0.5) == pytest.approx(-1.0)
    assert reward(False, 0.0, 0.001, "linear") == 0.0
    # a $0 (or tiny) threshold: the scale is bounded below by min_scale_usd, not 1e-6
    assert reward(True, 0.0002, 0.0, "linear", weight=0.5) == pytest.approx(1.0 - 0.5 * 2)
    assert reward(True, 0.0002, 1e-9, "linear", weight=0.5, min_scale_usd=0.001) == pytest.approx(0.9)

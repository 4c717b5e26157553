import numpy as np
import pytest

from corl_gym.agents.cost_curves import (
    accuracy_at_cost,
    aiq,
    apgr,
    cost_at_accuracy,
    cpt,
    oracle_frontier,
    upper_hull,
)


def test_upper_hull_is_non_decreasing_and_concave():
    points = [(0.0, 0.5), (1.0, 0.7), (2.0, 0.6), (3.0, 0.9), (1.5, 0.72), (4.0, 0.9)]
    assert upper_hull(points) == [(0.0, 0.5), (1.0, 0.7), (3.0, 0.9)]
    assert upper_hull([(1.0, 0.8), (1.0, 0.6)]) == [(1.0, 0.8)]


def test_random_routing_between_weak_and_strong_gives_apgr_about_half():
    rng = np.random.default_rng(0)
    n = 2000
    weak_correct = rng.random(n) < 0.6
    strong_correct = rng.random(n) < 0.9
    strong_cost = rng.uniform(0.005, 0.015, n)
    points = []
    for p in np.linspace(0, 1, 11):
        to_strong = rng.random(n) < p
        points.append((float((strong_cost * to_strong).mean()),
                       float(np.where(to_strong, strong_correct, weak_correct).mean())))
    weak, strong = weak_correct.mean(), strong_correct.mean()
    assert apgr(points, weak, strong, strong_cost.mean()) == pytest.approx(0.5, abs=0.03)


def test_perfect_and_useless_routers():
    weak, strong, cost = 0.6, 0.9, 0.01
    assert apgr([(0.0001, strong)], weak, strong, cost) > 0.98  # strong accuracy almost for free
    assert apgr([(cost, weak)], weak, strong, cost) == pytest.approx(0.0)
    assert cpt([(0.004, 0.75), (0.01, 0.9)], weak, strong, 0.5) == pytest.approx(0.004)
    assert cpt([(0.01, 0.7)], weak, strong, 0.8) is None


def test_aiq_reads_and_cost_at_accuracy():
    points = [(0.0, 0.5), (1.0, 1.0)]
    assert aiq(points, 1.0) == pytest.approx(0.75, abs=1e-6)
    assert aiq(points, 2.0) == pytest.approx(0.875, abs=1e-6)  # flat past the last point
    assert accuracy_at_cost(points, 0.5) == pytest.approx(0.75)
    assert cost_at_accuracy(points, 0.75) == pytest.approx(0.5)
    assert cost_at_accuracy(points, 1.01) is None


def test_oracle_frontier_from_labels():
    correct = np.array([[1, 1, 1], [0, 1, 1], [0, 0, 1], [0, 0, 0]], dtype=bool)
    cost = np.array([[0.0, 1.0, 5.0]] * 4)
    frontier = oracle_frontier(correct, cost)
    assert frontier[0] == (0.0, 0.25) and frontier[-1] == (pytest.approx(1.5), 0.75)

"""Metrics over the cost-accuracy curve of a router, generalised to K experts on a dollar axis.

A router evaluated at several budgets gives points (mean USD per query, accuracy). Answering alone is
always possible at $0, so every curve is anchored at (0, accuracy of the controller alone), the `weak`
end. The `strong` end is the most accurate single expert (`always:<expert>`) at its mean cost.

- `upper_hull(points)`: the non-decreasing concave envelope (RouterBench): what mixing the router's
  operating points can reach at each cost. Beyond its last point the curve stays flat.
- `aiq(points, c_max)`: Average Improvement in Quality (RouterBench): the mean of the hull over
  [0, c_max], i.e. its area divided by c_max.
- `apgr(points, weak, strong, strong_cost)`: Average Performance Gap Recovered (RouteLLM), with the
  share of calls to the strong model replaced by dollars: the mean over [0, strong_cost] of
  (hull(c) - weak) / (strong - weak). Routing at random between weak and strong traces the straight
  line, so it scores 0.5; the best possible is near 1.
- `cpt(points, ..., target)`: Call-Performance Threshold (RouteLLM) in dollars: the least cost at which
  the hull recovers `target` of the gap (`None` when it never does).
- `oracle_frontier(correct, cost)`: the best accuracy reachable at each dollar cap with perfect
  knowledge of which choice is right: per problem the cheapest correct choice within the cap.
- `accuracy_at_cost(points, c)` and `cost_at_accuracy(points, a)`: read the hull at a budget or a goal.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

Point = tuple[float, float]


def upper_hull(points: Iterable[Point], anchor: Point | None = None) -> list[Point]:
    """The non-decreasing upper convex hull of `points` (plus `anchor`), sorted by cost."""
    pts = sorted({(float(c), float(a)) for c, a in [*points, *([anchor] if anchor else [])]})
    if not pts:
        return []
    # Non-decreasing: a point costing more but no more accurate than a cheaper one is never worth it.
    frontier: list[Point] = []
    for cost, acc in pts:
        if frontier and acc <= frontier[-1][1]:
            continue
        if frontier and cost == frontier[-1][0]:
            frontier.pop()
        frontier.append((cost, acc))
    hull: list[Point] = []
    for p in frontier:
        while len(hull) >= 2 and _cross(hull[-2], hull[-1], p) >= 0:
            hull.pop()
        hull.append(p)
    return hull


def _cross(o: Point, a: Point, b: Point) -> float:
    return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])


def hull_value(hull: Sequence[Point], cost: float) -> float:
    """The hull's accuracy at `cost`: interpolated, flat past its last point, 0 before its first."""
    if not hull or cost < hull[0][0]:
        return 0.0
    costs = [c for c, _ in hull]
    return float(np.interp(cost, costs, [a for _, a in hull]))


def _mean_over(hull: Sequence[Point], c_max: float, samples: int = 2001) -> float:
    """The mean of the piecewise-linear hull over [0, c_max] (exact up to the sampling of kinks)."""
    if c_max <= 0:
        return hull_value(hull, 0.0)
    grid = np.unique(np.concatenate([np.linspace(0.0, c_max, samples), [c for c, _ in hull if c <= c_max]]))
    values = np.array([hull_value(hull, c) for c in grid])
    area = float(((values[1:] + values[:-1]) / 2.0 * np.diff(grid)).sum())
    return area / c_max


def aiq(points: Iterable[Point], c_max: float, anchor: Point | None = None) -> float:
    return _mean_over(upper_hull(points, anchor), c_max)


def apgr(points: Iterable[Point], weak: float, strong: float, strong_cost: float) -> float:
    gap = strong - weak
    if gap <= 0 or strong_cost <= 0:
        return float("nan")
    hull = upper_hull(points, anchor=(0.0, weak))
    return (_mean_over(hull, strong_cost) - weak) / gap


def cpt(points: Iterable[Point], weak: float, strong: float, target: float) -> float | None:
    """The least dollars per query at which the hull reaches `weak + target * (strong - weak)`."""
    return cost_at_accuracy(points, weak + target * (strong - weak), anchor=(0.0, weak))


def accuracy_at_cost(points: Iterable[Point], cost: float, anchor: Point | None = None) -> float:
    return hull_value(upper_hull(points, anchor), cost)


def cost_at_accuracy(points: Iterable[Point], accuracy: float, anchor: Point | None = None) -> float | None:
    hull = upper_hull(points, anchor)
    for (c0, a0), (c1, a1) in zip(hull, hull[1:]):
        if a0 >= accuracy:
            return c0
        if a1 >= accuracy:
            return c0 + (accuracy - a0) * (c1 - c0) / (a1 - a0)
    if hull and hull[-1][1] >= accuracy:
        return hull[-1][0]
    return None


def oracle_frontier(correct: np.ndarray, cost: np.ndarray) -> list[Point]:
    """(mean cost, accuracy) of the oracle under every per-query dollar cap, from labels of shape
    [problems, choices] whose column 0 is the free choice of answering alone."""
    caps = np.unique(cost)
    points = []
    for cap in caps:
        usable = correct & (cost <= cap)
        priced = np.where(usable, cost, np.inf)
        pick = np.where(usable.any(axis=1), priced.argmin(axis=1), 0)
        rows = np.arange(len(correct))
        points.append((float(cost[rows, pick].mean()), float(correct[rows, pick].mean())))
    return upper_hull(points)

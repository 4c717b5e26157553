"""`pareto.png`: accuracy against dollars per query, one panel per (pool, dataset).

Readable with many policies: each policy has its own colour and its own marker (20 of each before any
repeats, and no two policies share both), drawn hollow so a marker under another still shows; its points
per budget are joined by a thin line, the budget given by the marker's size (low small, high large).
Points that would sit on top of each other (policies that pick the same thing) are spread a few pixels
apart around their true position, and the panel says how many were. The oracle frontier (the best
accuracy reachable at each per-query dollar cap with perfect knowledge, from the test problems' labels;
drawn when the run includes `oracle`) is black; the upper hull of every non-oracle point, i.e. what mixing
the policies shown can reach, dashed. The x axis is symmetric-log in dollars, so $0 (answering alone)
sits on the axis with the rest.
"""

from __future__ import annotations

import math
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from corl_gym.agents.cost_curves import upper_hull

SIZES = {"low": 30, "medium": 60, "high": 110}  # marker area per budget; other budgets (mixed, $x) get 45
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "h", "<", ">", "p", "d", "8", "H", "1", "2", "3", "4", "+")
LINE_MARKERS = ("1", "2", "3", "4", "+")  # markers without a face: hollow by nature
LINTHRESH = 1e-4  # the symlog axis is linear below this many dollars
SPREAD_PT = 6.0  # the least distance (in points) from their true position at which coinciding markers are drawn
X_AXIS = "mean $ per query (symlog)"
Y_AXIS = "accuracy"


@dataclass
class Mark:
    """One (policy, budget) point as drawn: where it is, how it looks, and its offset in points."""

    policy: str
    budget: str
    x: float
    y: float
    color: Any
    marker: str
    size: float
    dx: float = 0.0
    dy: float = 0.0


def pareto_plot(
    summary: list[dict[str, Any]], path: Path, frontiers: dict[tuple[str, str], list[tuple[float, float]]] | None = None
) -> Path | None:
    """Write the plot; returns its path, or None (with a note) when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("pareto.png skipped: pip install 'corl-gym[plot]' for plots", file=sys.stderr)
        return None
    fig = pareto_figure(summary, frontiers)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path


def pareto_figure(summary: list[dict[str, Any]],
                  frontiers: dict[tuple[str, str], list[tuple[float, float]]] | None = None):
    """The matplotlib figure of `pareto_plot` (one panel per (pool, dataset))."""
    import matplotlib.pyplot as plt

    blocks: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for entry in summary:
        blocks[(entry["pool"], entry["dataset"])].append(entry)
    policies = max((len({e["policy"] for e in entries}) for entries in blocks.values()), default=1)
    fig, axes = plt.subplots(1, max(1, len(blocks)), figsize=(10 * max(1, len(blocks)), max(5.5, 3 + 0.28 * policies)),
                             squeeze=False)
    for ax, ((pool, dataset), entries) in zip(axes[0], blocks.items()):
        _panel(ax, entries, f"{dataset} | pool {pool}", (frontiers or {}).get((pool, dataset)))
    fig.tight_layout()
    return fig


def layout(entries: list[dict[str, Any]]) -> list[Mark]:
    """Colour, marker, size and offset of every point: one style per policy, coinciding points spread."""
    policies = list(dict.fromkeys(e["policy"] for e in entries))
    styles = dict(zip(policies, _styles(len(policies))))
    marks = []
    for e in entries:
        color, marker = ("black", "*") if e["policy"] == "oracle" else styles[e["policy"]]
        marks.append(Mark(e["policy"], e["budget"], e["mean_cost_usd"], e["accuracy"], color, marker,
                          SIZES.get(e["budget"], 45)))
    for group in _coinciding(marks):
        radius = max(SPREAD_PT, 1.5 * len(group))  # room on the circle for every marker of the group
        for k, mark in enumerate(group):
            angle = 2 * math.pi * k / len(group)
            mark.dx, mark.dy = radius * math.cos(angle), radius * math.sin(angle)
    return marks


def _styles(n: int) -> list[tuple[Any, str]]:
    """n (colour, marker) pairs: colours all distinct (tab20, then evenly spaced hues), markers distinct up
    to 20 and shifted against the colours after that, so no two pairs are equal."""
    import matplotlib

    colors = (
        list(matplotlib.colormaps["tab20"].colors)
        if n <= 20
        else [matplotlib.colormaps["hsv"](i / n) for i in range(n)]
    )
    return [(colors[i], MARKERS[(i + i // len(MARKERS)) % len(MARKERS)]) for i in range(n)]


def _coinciding(marks: list[Mark]) -> list[list[Mark]]:
    """Groups of two or more points that would be drawn on top of each other (in axis units: symlog x,
    accuracy y; a marker is about 1.5% of an axis wide)."""
    groups: list[list[Mark]] = []
    for mark in marks:
        for group in groups:
            if abs(_symlog(group[0].x) - _symlog(mark.x)) < 0.03 and abs(group[0].y - mark.y) < 0.006:
                group.append(mark)
                break
        else:
            groups.append([mark])
    return [g for g in groups if len(g) > 1]


def _symlog(x: float) -> float:
    return math.copysign(math.log10(1 + abs(x) / LINTHRESH), x)


def _panel(ax: Any, entries: list[dict[str, Any]], title: str, frontier: list[tuple[float, float]] | None) -> None:
    from matplotlib.lines import Line2D
    from matplotlib.transforms import offset_copy

    marks = layout(entries)
    if frontier:
        ax.plot([c for c, _ in frontier], [a for _, a in frontier], "-", color="black", linewidth=2.5,
                label="oracle frontier")
    by_policy: dict[str, list[Mark]] = defaultdict(list)
    for mark in marks:
        by_policy[mark.policy].append(mark)
    for policy, points in by_policy.items():
        points.sort(key=lambda m: m.x)
        ax.plot([m.x for m in points], [m.y for m in points], "-", color=points[0].color, linewidth=1.0, alpha=0.6)
        for m in points:
            shifted = offset_copy(ax.transData, fig=ax.figure, x=m.dx, y=m.dy, units="points")
            paint = {"color": m.color} if m.marker in LINE_MARKERS else {"facecolors": "none", "edgecolors": m.color}
            ax.scatter(m.x, m.y, marker=m.marker, s=m.size, linewidths=1.4, transform=shifted, zorder=3, **paint)
        ax.plot([], [], "-", color=points[0].color, marker=points[0].marker, markerfacecolor="none", label=policy)
    hull = upper_hull([(e["mean_cost_usd"], e["accuracy"]) for e in entries if e["policy"] != "oracle"])
    if hull:
        ax.plot([c for c, _ in hull], [a for _, a in hull], "--", color="grey", linewidth=1.5, label="hull of policies")
    budgets = list(dict.fromkeys(m.budget for m in marks))
    handles, _ = ax.get_legend_handles_labels()
    handles += [Line2D([], [], linestyle="", marker="o", markerfacecolor="none", markeredgecolor="grey",
                       markersize=math.sqrt(SIZES.get(b, 45)), label=f"budget {b}") for b in budgets]
    spread = sum(1 for m in marks if m.dx or m.dy)
    if spread:
        ax.text(0.01, 0.01, f"{spread} coinciding points drawn on a small circle around their position",
                transform=ax.transAxes, fontsize=7, color="grey", va="bottom")
    ax.set_xscale("symlog", linthresh=LINTHRESH)
    ax.set_xlabel(X_AXIS)
    ax.set_ylabel(Y_AXIS)
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(handles=handles, fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))

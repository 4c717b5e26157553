"""`pareto.png`: accuracy against dollars per query, one panel per (pool, dataset).

Each policy's points per budget (marker shape = budget) joined by a thin line; the oracle frontier
(the best accuracy reachable at each per-query dollar cap with perfect knowledge, from the test
problems' labels; drawn when the run includes `oracle`) in black; the upper hull of every non-oracle point, i.e. what mixing the policies
shown can reach, dashed. The x axis is symmetric-log in dollars, so $0 (answering alone) sits on the axis with the rest.
"""

from __future__ import annotations

import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

from corl_gym.benchmarks.metrics import upper_hull

MARKERS = {"low": "o", "medium": "s", "high": "^"}


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
    blocks: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for entry in summary:
        blocks[(entry["pool"], entry["dataset"])].append(entry)
    fig, axes = plt.subplots(1, len(blocks), figsize=(9.5 * len(blocks), 5.5), squeeze=False)
    for ax, ((pool, dataset), entries) in zip(axes[0], blocks.items()):
        _panel(ax, entries, f"{dataset} | pool {pool}", (frontiers or {}).get((pool, dataset)))
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _panel(ax: Any, entries: list[dict[str, Any]], title: str, frontier: list[tuple[float, float]] | None) -> None:
    by_policy: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for e in entries:
        by_policy[e["policy"]].append(e)
    palette = __import__("matplotlib").colormaps["tab10"].colors
    styles = ["-", "--", "-.", ":"]
    if frontier:
        ax.plot([c for c, _ in frontier], [a for _, a in frontier], "-", color="black", linewidth=2.5, label="oracle frontier")
    for n, (policy, points) in enumerate(by_policy.items()):
        points = sorted(points, key=lambda e: e["mean_cost_usd"])
        color = "black" if policy == "oracle" else palette[n % len(palette)]
        style = "" if policy == "oracle" else styles[(n // len(palette)) % len(styles)]
        xs, ys = [p["mean_cost_usd"] for p in points], [p["accuracy"] for p in points]
        ax.plot(xs, ys, style, color=color, linewidth=1.2, alpha=0.8, label=policy)
        for p in points:
            ax.scatter(p["mean_cost_usd"], p["accuracy"], marker=MARKERS.get(p["budget"], "x"), color=color, s=45, zorder=3)
    hull = upper_hull([(e["mean_cost_usd"], e["accuracy"]) for e in entries if e["policy"] != "oracle"])
    if hull:
        ax.plot([c for c, _ in hull], [a for _, a in hull], "--", color="grey", linewidth=1.5, label="hull of policies")
    for budget, marker in MARKERS.items():
        ax.scatter([], [], marker=marker, color="grey", label=f"budget {budget}")
    ax.set_xscale("symlog", linthresh=1e-4)
    ax.set_xlabel("mean $ per query (symlog)")
    ax.set_ylabel("accuracy")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))

"""Per-(policy, budget) metrics of benchmark rows and their Markdown table.

- accuracy: share of episodes answered correctly, whatever they cost;
- reward: mean final reward (correct and within budget under the default hard gate);
- $/query: mean dollars spent on expert calls per episode;
- expert-call ratio: share of episodes with at least one expert call; per expert: calls per episode;
- over-budget: share of episodes whose cost passed the threshold.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Iterable


def summarize(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        groups[(row["policy"], row["budget"])].append(row)
    summary = []
    for (policy, budget), group in groups.items():
        n = len(group)
        experts = list(dict.fromkeys(e for r in group for e in r["calls"]))  # pool order
        summary.append(
            {
                "policy": policy,
                "budget": budget,
                "n": n,
                "accuracy": sum(r["correct"] for r in group) / n,
                "mean_reward": sum(r["reward"] for r in group) / n,
                "mean_cost_usd": sum(r["cost_usd"] for r in group) / n,
                "expert_call_ratio": sum(any(r["calls"].values()) for r in group) / n,
                "calls_per_episode": {e: sum(r["calls"].get(e, 0) for r in group) / n for e in experts},
                "over_budget_rate": sum(r["over_budget"] for r in group) / n,
            }
        )
    return summary


def summary_markdown(summary: list[dict[str, Any]], title: str = "") -> str:
    experts = list(dict.fromkeys(e for s in summary for e in s["calls_per_episode"]))
    head = ["policy", "budget", "n", "accuracy", "reward", "$/query", "expert-call ratio"]
    head += [f"calls {e}" for e in experts] + ["over-budget"]
    lines = [f"### {title}", ""] if title else []
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for s in summary:
        cells = [s["policy"], s["budget"], str(s["n"]), f"{s['accuracy']:.3f}", f"{s['mean_reward']:.3f}"]
        cells += [f"{s['mean_cost_usd']:.6f}", f"{s['expert_call_ratio']:.3f}"]
        cells += [f"{s['calls_per_episode'].get(e, 0.0):.3f}" for e in experts]
        cells += [f"{s['over_budget_rate']:.3f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)

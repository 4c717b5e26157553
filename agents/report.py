"""The bench's report, from episode rows: metrics per (pool, dataset, policy, budget), curve metrics per
policy, the Markdown table, and the files `corl-gym eval` and the training recipes write. The
benchmark (`corl_gym.benchmarks.bench`), the evaluator and the learners' rollout logs all summarise
episodes with `episode_stats`, so a number means the same wherever it is printed.

Per (pool, dataset, policy, budget), over all seeds:
- accuracy: share answered correctly, whatever it cost (95% Wilson interval);
- reward: mean final reward (correct and within budget under the hard gate), 95% normal interval;
- $/query: mean dollars spent on expert calls per episode, 95% normal interval;
- expert-call ratio: share of episodes with at least one expert call; per expert: calls per episode;
- over-budget: share of episodes whose cost passed the threshold.

Per (pool, dataset, policy), from its (mean cost, accuracy) points across budgets (`cost_curves`): AIQ,
APGR, CPT(50%), CPT(80%), accuracy at a cost, cost at a target accuracy. A block without them says why
in their place. Policies run only as the curves' reference points are marked `(reference)`; dollars of
pools whose experts are simulated or replayed are marked simulated.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from corl_gym.agents import cost_curves

Z95 = 1.959963984540054
GROUP_KEYS = ("pool", "dataset", "policy", "budget")


def wilson(successes: float, n: int) -> tuple[float, float]:
    if n == 0:
        return (0.0, 0.0)
    p = successes / n
    centre = (p + Z95**2 / (2 * n)) / (1 + Z95**2 / n)
    half = Z95 * math.sqrt(p * (1 - p) / n + Z95**2 / (4 * n * n)) / (1 + Z95**2 / n)
    return (centre - half, centre + half)


def mean_interval(values: list[float]) -> tuple[float, float]:
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return (mean, mean)
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    # a normal interval can leave the range the values can take (1.004 for a 0/1 reward): clip it there
    low, high = min(values), max(values)
    return (max(mean - Z95 * sd / math.sqrt(n), low), min(mean + Z95 * sd / math.sqrt(n), high))


def episode_stats(group: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The metrics of a group of episodes (rows with `reward`, `correct`, `cost_usd`, `calls`,
    `over_budget`): `n`, `mean_reward`, `accuracy`, `mean_cost_usd`, `expert_call_ratio` (episodes with
    a call), `calls_per_expert` (mean calls per episode, in pool order) and `over_budget_rate`."""
    n = len(group)
    per = max(n, 1)  # an empty group gives zeros
    experts = list(dict.fromkeys(e for r in group for e in r["calls"]))
    return {
        "n": n,
        "mean_reward": sum(r["reward"] for r in group) / per,
        "accuracy": sum(r["correct"] for r in group) / per,
        "mean_cost_usd": sum(r["cost_usd"] for r in group) / per,
        "expert_call_ratio": sum(any(r["calls"].values()) for r in group) / per,
        "calls_per_expert": {e: sum(r["calls"].get(e, 0) for r in group) / per for e in experts},
        "over_budget_rate": sum(r["over_budget"] for r in group) / per,
    }


def well_formed_rate(group: Sequence[Mapping[str, Any]]) -> float:
    """The share of the group's turns without an action error (rows with `turns` and `action_errors`)."""
    return 1.0 - sum(r["action_errors"] for r in group) / max(sum(r["turns"] for r in group), 1)


def _groups(rows: Iterable[Mapping[str, Any]], keys: Sequence[str]) -> dict[tuple, list[Mapping[str, Any]]]:
    groups: dict[tuple, list[Mapping[str, Any]]] = defaultdict(list)
    for row in rows:
        missing = [key for key in keys if key not in row]
        if missing:  # an episode of `run_episode` says none of them
            raise ValueError(f"a row needs {', '.join(keys)} besides the episode's fields; "
                             f"one lacks {', '.join(missing)}")
        groups[tuple(row[key] for key in keys)].append(row)
    return groups


def summarize(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The table's entries: `episode_stats` per (pool, dataset, policy, budget), with 95% intervals."""
    summary = []
    for (pool, dataset, policy, budget), group in _groups(rows, GROUP_KEYS).items():
        stats = episode_stats(group)
        summary.append(
            {
                "pool": pool, "dataset": dataset, "policy": policy, "budget": budget, "n": stats["n"],
                "accuracy": stats["accuracy"],
                "accuracy_ci": wilson(sum(r["correct"] for r in group), stats["n"]),
                "mean_reward": stats["mean_reward"],
                "reward_ci": mean_interval([r["reward"] for r in group]),
                "mean_cost_usd": stats["mean_cost_usd"],
                "cost_ci": mean_interval([r["cost_usd"] for r in group]),
                "expert_call_ratio": stats["expert_call_ratio"],
                "calls_per_episode": stats["calls_per_expert"],
                "over_budget_rate": stats["over_budget_rate"],
            }
        )
    return summary


def eval_summary(rows: Sequence[dict[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    """dataset -> budget -> `episode_stats` with `reward_se` (the mean reward's standard error) and
    `well_formed_rate` (turns without an action error): `eval.json`."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for (dataset, budget), group in _groups(rows, ("dataset", "budget")).items():
        stats = episode_stats(group)
        n, mean = stats["n"], stats["mean_reward"]
        variance = sum((float(r["reward"]) - mean) ** 2 for r in group) / (n - 1) if n > 1 else 0.0
        out.setdefault(dataset, {})[budget] = {"n": n, "mean_reward": mean, "reward_se": (variance / n) ** 0.5, **stats,
                                               "well_formed_rate": well_formed_rate(group)}
    return out


def write_report(rows: Sequence[dict[str, Any]], out: str | Path, name: str = "eval",
                 reference_rows: Sequence[dict[str, Any]] = (), budgets: dict | None = None, **context: Any) -> str:
    """`<name>_rows.jsonl`, `<name>.json` (`eval_summary`) and `<name>.md` (the table) under `out`.
    `reference_rows` (the curve metrics' reference policies) join the table only; `budgets` ((pool,
    dataset) -> thresholds) and `context` (`report_markdown`'s references, notes, simulated) shape its
    curve metrics. Returns the Markdown."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}_rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (out / f"{name}.json").write_text(json.dumps(eval_summary(rows), indent=2))
    summary = summarize([*rows, *reference_rows])
    markdown = report_markdown(summary, curve_metrics(summary, budgets or {}), **context)
    (out / f"{name}.md").write_text(markdown + "\n")
    return markdown


def curve_metrics(
    summary: list[dict[str, Any]],
    budgets: Mapping[tuple[str, str], Mapping[str, float]],
    at_cost: float | None = None,
    target_accuracy: float | None = None,
) -> list[dict[str, Any]]:
    """Curve metrics per (pool, dataset, policy). Needs `always-self` (weak end) and at least one
    `always:<expert>` (strong end) in the same (pool, dataset); without them that block is skipped."""
    curves = []
    for (pool, dataset), entries in _by_block(summary).items():
        weak = [e["accuracy"] for e in entries if e["policy"] == "always-self"]
        singles = [e for e in entries if e["policy"].startswith("always:")]
        if not weak or not singles:
            continue
        weak_acc = max(weak)
        strong = max(singles, key=lambda e: (e["accuracy"], -e["mean_cost_usd"]))
        c_max = max(e["mean_cost_usd"] for e in entries)
        cost_point = at_cost if at_cost is not None else min(budgets.get((pool, dataset), {"low": 0.0}).values())
        goal = target_accuracy if target_accuracy is not None else strong["accuracy"]
        for policy, points in _points(entries).items():
            anchor = (0.0, weak_acc)
            curves.append(
                {
                    "pool": pool, "dataset": dataset, "policy": policy,
                    "aiq": cost_curves.aiq(points, c_max, anchor=anchor),
                    "apgr": cost_curves.apgr(points, weak_acc, strong["accuracy"], strong["mean_cost_usd"]),
                    "cpt50": cost_curves.cpt(points, weak_acc, strong["accuracy"], 0.5),
                    "cpt80": cost_curves.cpt(points, weak_acc, strong["accuracy"], 0.8),
                    "at_cost": cost_point,
                    "accuracy_at_cost": cost_curves.accuracy_at_cost(points, cost_point, anchor=anchor),
                    "target_accuracy": goal,
                    "cost_at_target": cost_curves.cost_at_accuracy(points, goal, anchor=anchor),
                    "strong": strong["policy"],
                }
            )
    return curves


def _by_block(summary: list[dict[str, Any]]) -> dict[tuple[str, str], list[dict[str, Any]]]:
    blocks: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for entry in summary:
        blocks[(entry["pool"], entry["dataset"])].append(entry)
    return blocks


def _points(entries: list[dict[str, Any]]) -> dict[str, list[tuple[float, float]]]:
    points: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for e in entries:
        points[e["policy"]].append((e["mean_cost_usd"], e["accuracy"]))
    return points


def _policy_names(entries: list[dict[str, Any]], references: set[str]) -> dict[str, str]:
    return {e["policy"]: e["policy"] + (" (reference)" if e["policy"] in references else "") for e in entries}


def _usd(value: float | None) -> str:
    return "never" if value is None else f"{value:.6f}"


NO_CURVES = "curve metrics not computed: they need always-self and an always:<expert> among the policies"


def report_markdown(summary: list[dict[str, Any]], curves: list[dict[str, Any]], *,
                    references: Mapping[tuple[str, str], Iterable[str]] | None = None,
                    notes: Mapping[tuple[str, str], str] | None = None, simulated: Iterable[str] = ()) -> str:
    """The tables per (pool, dataset). `references`: policies run only as curve reference points;
    `notes`: why a block has no curve metrics; `simulated`: pools whose dollars no one paid."""
    lines: list[str] = []
    simulated = set(simulated)
    curves_by_block = defaultdict(list)
    for c in curves:
        curves_by_block[(c["pool"], c["dataset"])].append(c)
    for (pool, dataset), entries in _by_block(summary).items():
        shown = _policy_names(entries, set((references or {}).get((pool, dataset), ())))
        experts = list(dict.fromkeys(e for s in entries for e in s["calls_per_episode"]))
        usd = "simulated $/query" if pool in simulated else "$/query"
        head = ["policy", "budget", "n", "accuracy (95% CI)", "reward (95% CI)", f"{usd} (95% CI)", "expert-call ratio"]
        head += [f"calls {e}" for e in experts] + ["over-budget"]
        lines += [f"### {dataset} | pool {pool}", ""]
        if pool in simulated:
            lines += [f"Dollars are simulated: pool {pool}'s experts are simulated or replayed, priced at list "
                      "prices; no money was spent.", ""]
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for s in entries:
            cells = [shown[s["policy"]], s["budget"], str(s["n"])]
            cells += [f"{s['accuracy']:.3f} ({s['accuracy_ci'][0]:.3f}-{s['accuracy_ci'][1]:.3f})"]
            cells += [f"{s['mean_reward']:.3f} ({s['reward_ci'][0]:.3f}-{s['reward_ci'][1]:.3f})"]
            cells += [f"{s['mean_cost_usd']:.6f} ({s['cost_ci'][0]:.6f}-{s['cost_ci'][1]:.6f})"]
            cells += [f"{s['expert_call_ratio']:.3f}"]
            cells += [f"{s['calls_per_episode'].get(e, 0.0):.3f}" for e in experts]
            cells += [f"{s['over_budget_rate']:.3f}"]
            lines.append("| " + " | ".join(cells) + " |")
        block_curves = curves_by_block.get((pool, dataset), [])
        if not block_curves:
            lines += ["", (notes or {}).get((pool, dataset), NO_CURVES) + "."]
        else:
            c0 = block_curves[0]
            lines += [
                "",
                f"Curve metrics (accuracy vs $/query; weak end always-self at $0, strong end {c0['strong']}):",
                "",
                f"| policy | AIQ | APGR | CPT(50%) $ | CPT(80%) $ | accuracy at ${c0['at_cost']:g} "
                f"| $ to reach {c0['target_accuracy']:.3f} |",
                "|---|---|---|---|---|---|---|",
            ]
            for c in block_curves:
                lines.append(
                    f"| {shown.get(c['policy'], c['policy'])} | {c['aiq']:.4f} | {c['apgr']:.3f} "
                    f"| {_usd(c['cpt50'])} | {_usd(c['cpt80'])} "
                    f"| {c['accuracy_at_cost']:.3f} | {_usd(c['cost_at_target'])} |"
                )
        lines.append("")
    return "\n".join(lines).rstrip()

"""PPO's part of the training recipe (`agents.recipe`, `--learner ppo --preset tiny-cpu`): how the recipe
runs PPO (`ppo_learner`), the tiny-cpu targets it checks PPO against, and `curves.png` (copy
pretraining and SFT losses, PPO's rollout reward and cost by budget, KL and value loss)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from corl_gym.agents.ppo.config import PPOConfig
from corl_gym.agents.ppo.logger import read_metrics
from corl_gym.agents.recipe import PRESETS, RecipeLearner
from corl_gym.budget import BUDGET_MODES


def ppo_learner(train: Callable[[PPOConfig], Path]) -> RecipeLearner:
    """PPO as the recipe runs it; `train` is `agents.ppo.train.train` (that module imports this one)."""
    return RecipeLearner(name="PPO", key="ppo", policy="ppo", config=PPOConfig, defaults=_preset_values, train=train,
                         progress=_iterations_done, extras=_targets, finish=_curves_and_targets)


def _preset_values(name: str) -> dict[str, Any]:
    return PRESETS[name]["ppo"]


def _iterations_done(cfg: PPOConfig, actor_dir: Path) -> tuple[int, int, str]:
    return max((r["step"] for r in read_metrics(cfg.out)), default=0), cfg.iterations, "iterations"


def _targets(cfg: PPOConfig, actor_dir: Path, result: dict[str, Any]) -> dict[str, Any]:
    return {"targets": check_targets(result["sft_start"], result["ppo"], result["copy_rate"], result["references"])}


def _curves_and_targets(out: Path, result: dict[str, Any]) -> None:
    plot_curves(out)
    print(json.dumps(result["targets"], indent=2))


def check_targets(sft: dict[str, dict[str, Any]], ppo: dict[str, dict[str, Any]], copy: float,
                  references: dict[str, dict[str, float]]) -> dict[str, Any]:
    """The tiny-cpu targets, each with the measured values."""
    budgets = [b for b in BUDGET_MODES if b in ppo]
    mean = lambda table: sum(table[b]["mean_reward"] for b in budgets) / len(budgets)  # noqa: E731
    costs = [ppo[b]["mean_cost_usd"] for b in budgets]
    calls = [ppo[b]["expert_call_ratio"] for b in budgets]
    ceiling = {b: max(references[b].values()) for b in budgets}
    return {
        "copy_rate_ge_0.95": {"met": copy >= 0.95, "value": copy},
        "ppo_mean_ge_sft_mean_plus_0.30": {"met": mean(ppo) >= mean(sft) + 0.30, "ppo": mean(ppo),
                                           "sft_start": mean(sft), "ceiling": sum(ceiling.values()) / len(budgets)},
        "ppo_low_ge_0.70": {"met": ppo["low"]["mean_reward"] >= 0.70, "value": ppo["low"]["mean_reward"]},
        "ppo_high_ge_0.90": {"met": ppo["high"]["mean_reward"] >= 0.90, "value": ppo["high"]["mean_reward"]},
        "over_budget_low_le_0.10": {"met": ppo["low"]["over_budget_rate"] <= 0.10,
                                    "value": ppo["low"]["over_budget_rate"]},
        "over_budget_medium_le_0.20": {"met": ppo["medium"]["over_budget_rate"] <= 0.20,
                                       "value": ppo["medium"]["over_budget_rate"]},
        "mean_cost_increasing_2x": {"met": all(b >= 2 * a and b > a for a, b in zip(costs, costs[1:])), "value": costs},
        "expert_call_ratio_non_decreasing": {"met": all(a <= b for a, b in zip(calls, calls[1:])), "value": calls},
        "why_call_ratio_is_not_strictly_increasing": (
            "the controller is weaker than every expert, so the best policy calls at every budget (single-choice "
            f"ceiling per budget: {json.dumps(references)}); the budget decides which expert is worth its price, "
            "which shows in the cost and calls_per_expert, while the call ratio can only stay near 1"),
    }


def plot_curves(out: Path) -> Path | None:
    """`curves.png`: copy pretraining and SFT losses, PPO reward and expert-call ratio by budget, KL and
    value loss."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    ppo = read_metrics(out)
    sft, copy = _jsonl(out / "sft" / "sft_metrics.jsonl"), _jsonl(out / "sft" / "copy_metrics.jsonl")
    copy = [r for r in copy if "copy/loss" in r]
    fig, axes = plt.subplots(1, 4, figsize=(18, 3.8))
    axes[0].plot([r["step"] for r in copy], _smooth([r["copy/loss"] for r in copy], 25), label="copy pretraining")
    axes[0].plot([len(copy) + r["step"] for r in sft], _smooth([r["sft/loss"] for r in sft], 5), label="SFT")
    axes[0].set(title="copy pretraining, then SFT", xlabel="step", ylabel="cross-entropy")
    axes[0].legend()
    for budget in BUDGET_MODES:
        rows = [r for r in ppo if f"env/reward/{budget}" in r]
        axes[1].plot([r["step"] for r in rows], _smooth([r[f"env/reward/{budget}"] for r in rows]), label=budget)
        axes[2].plot([r["step"] for r in rows], _smooth([r[f"env/mean_cost_usd/{budget}"] for r in rows]), label=budget)
    axes[1].set(title="PPO rollout reward by budget (smoothed)", xlabel="iteration", ylabel="mean reward")
    axes[2].set(title="PPO rollout cost by budget (smoothed)", xlabel="iteration", ylabel="mean cost (simulated $)")
    if any(r.get(f"env/mean_cost_usd/{b}", 0) > 0 for r in ppo for b in BUDGET_MODES):
        axes[2].set_yscale("log")  # the budgets' costs differ by orders of magnitude
    axes[1].legend()
    axes[2].legend()
    axes[3].plot([r["step"] for r in ppo], [r.get("critic/vf_loss", 0.0) for r in ppo], label="critic/vf_loss")
    axes[3].plot([r["step"] for r in ppo], [r.get("actor/kl", 0.0) for r in ppo], label="actor/kl")
    axes[3].set(title="value loss and KL to reference", xlabel="iteration", ylabel="value")
    axes[3].legend()
    fig.tight_layout()
    path = out / "curves.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []


def _smooth(values: list[float], k: int = 3) -> list[float]:
    return [sum(values[max(0, i - k + 1) : i + 1]) / len(values[max(0, i - k + 1) : i + 1]) for i in range(len(values))]

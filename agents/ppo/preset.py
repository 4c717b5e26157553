"""`corl-gym train --learner ppo --preset tiny-cpu`: the whole method on a laptop, with fixed amounts of
work sized for at most 15 minutes on 2 idle CPU cores.

1. SFT start (`agents.sft`, `agents.copy_skill`): a byte-level BPE tokenizer trained on the env's own
   texts and a 0.2M-parameter Qwen2 with random weights; copy pretraining on random repeat sequences
   (the induction skill a model trained from scratch lacks); then SFT on compact-style demonstrations
   of `synthetic`'s training split with `sim-paper`. The teachers answer alone or call one of the 3
   experts (with the short query `Solve it.`) and copy its boxed answer, each equally often among those
   whose expected cost fits the episode's budget (`--teachers-within-budget`): the start keeps to the
   budget rule its prompt states, and which affordable choice earns most is left to RL (from a
   budget-blind mix the start ignored the budget, and PPO settled on gpt-4.1-nano at every budget).
   Each demonstration plays a random answer (see `agents.sft`), so the answer turn can only be learned
   as a copy.
2. Copy check: the held-out forced-call copy rate (`agents.evaluate.copy_rate`). Below 0.95 the preset
   stops here with a message, before PPO: a controller that cannot quote an expert earns nothing by
   calling one, and RL would only learn to avoid the experts.
3. Evaluate the SFT start: held-out problems x low / medium / high, greedy.
4. PPO (`agents.ppo.train`) from the SFT start, budget modes mixed per episode.
5. Evaluate PPO the same way; write `eval.json` (both policies per budget, the copy rate, the
   references on the same problems, the targets' checks, wall time per phase, `complete`), `eval.md`
   (the bench's table) and `curves.png`.

Problems are restricted to integer answers of at most 3 digits, one token each for the tiny tokenizer.
The amounts of work are fixed (steps, iterations), so results do not depend on how busy the machine is: a
busy machine takes longer instead of training less. PPO has a wall-clock cap as a safety net only; a run
it cuts, or one whose copy check fails, writes `complete: false` with the reason and is not a result.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import Any, Sequence

from corl_gym.agents.ppo.config import PPOConfig, parse_config

CALL_QUERY = "Solve it."
PRESETS: dict[str, dict[str, Any]] = {
    "tiny-cpu": {
        "ppo": dict(
            out="runs/tiny-cpu", device="cpu", integer_answers=True, max_turns=2, prompt_style="compact",
            num_envs=32, max_new_tokens=20, iterations=60, actor_lr=3e-4, critic_lr=1e-3, num_minibatches=2,
            update_epochs=2, kl_coef=0.001, ent_coef=0.0, save_every=10, time_limit_s=1800.0, tensorboard=True,
        ),
        "sft": dict(size="micro", prompt_style="compact", call_query=CALL_QUERY, random_answers=True,
                    teachers="always-self,always:*", episodes=1200, epochs=5, batch_size=16, lr=1e-3, warmup_steps=20,
                    teachers_within_budget=True, copy_short_steps=2000, copy_long_steps=1000, copy_rows=8),
        "copy_check": dict(problems=300, min_rate=0.95),
        "eval": dict(limit=100, batch_size=100),
    },
}


def run_preset(name: str, argv: Sequence[str], prog: str | None = None) -> int:
    from corl_gym.agents.evaluate import evaluate, eval_summary, load_controller, write_report
    from corl_gym.agents.ppo.logger import read_metrics
    from corl_gym.agents.ppo.train import train

    preset = PRESETS[name]
    cfg = parse_config(PPOConfig, argv, prog, **preset["ppo"])
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    report = Report(out, name, cfg.dataset, cfg.pool)
    sft_dir = sft_start(cfg, preset, out / "sft", report)
    if not report.copy_passed(preset["copy_check"]["min_rate"]):
        return report.stop(f"copy check failed: the SFT start copied the expert's answer in {report.result['copy_rate']:.3f} "
                           f"of held-out forced calls, below {preset['copy_check']['min_rate']}; PPO was not run")

    eval_kwargs = dict(pool=cfg.pool, datasets=[cfg.dataset], test_fraction=cfg.test_fraction,
                       integer_answers=cfg.integer_answers, max_turns=cfg.max_turns, max_new_tokens=cfg.max_new_tokens,
                       seed=cfg.seed, prompt_style=cfg.prompt_style, call_query=CALL_QUERY, **preset["eval"])
    with report.phase("eval_sft"):
        sft_rows = evaluate(*load_controller(sft_dir), policy="sft", **eval_kwargs)
    with report.phase("ppo"):
        actor_dir = train(dataclasses.replace(cfg, model=str(sft_dir), preset=""))
    done = max((r["step"] for r in read_metrics(out)), default=0)
    if done < cfg.iterations:
        report.cut(f"PPO stopped at its {cfg.time_limit_s:.0f} s time cap after {done} of {cfg.iterations} iterations")
    with report.phase("eval_ppo"):
        ppo_rows = evaluate(*load_controller(actor_dir), policy="ppo", **eval_kwargs)

    references = reference_rewards(cfg, sft_rows)
    markdown = write_report(sft_rows + ppo_rows, out, "eval_table")
    sft, ppo = eval_summary(sft_rows)[cfg.dataset], eval_summary(ppo_rows)[cfg.dataset]
    report.result.update(ppo=ppo, sft_start=sft, references=references,
                         targets=check_targets(sft, ppo, report.result["copy_rate"], references))
    report.write()
    plot_curves(out)
    print(markdown)
    print(json.dumps(report.result["targets"], indent=2))
    return report.finish()


def sft_start(cfg: Any, preset: dict[str, Any], sft_dir: Path, report: "Report", build: bool = True) -> Path:
    """The preset's SFT start in `sft_dir` (built there when `build`, unless a resumed run finds it) and its
    copy check, recorded in `report`."""
    from corl_gym.agents.evaluate import copy_rate, load_controller, select_problems
    from corl_gym.agents.sft import SFTConfig, run_sft

    if build and not (getattr(cfg, "resume", False) and (sft_dir / "config.json").is_file()):
        shared = dict(pool=cfg.pool, dataset=cfg.dataset, test_fraction=cfg.test_fraction,
                      integer_answers=cfg.integer_answers, max_turns=cfg.max_turns, seed=cfg.seed, progress=cfg.progress)
        with report.phase("sft"):
            run_sft(SFTConfig(out=str(sft_dir), **shared, **preset["sft"]))
    check = preset["copy_check"]
    with report.phase("copy_check"):
        problems = select_problems(cfg.dataset, "test", cfg.test_fraction, cfg.integer_answers, check["problems"])
        rate = copy_rate(*load_controller(sft_dir), problems, pool=cfg.pool, call_query=preset["sft"]["call_query"],
                         prompt_style=preset["sft"]["prompt_style"], max_new_tokens=cfg.max_new_tokens, seed=cfg.seed)
    report.result.update(copy_rate=rate, copy_check={"problems": len(problems), "min_rate": check["min_rate"]})
    print(f"copy check: {rate:.3f} of {len(problems)} held-out forced calls copied the expert's answer")
    return sft_dir


class Report:
    """`eval.json` as it grows: wall time per phase, the copy check, whether the run is complete."""

    def __init__(self, out: Path, preset: str, dataset: str, pool: str):
        self.out, self.began = out, time.perf_counter()
        self.result: dict[str, Any] = {"preset": preset, "dataset": dataset, "pool": pool, "command": _command(),
                                       "complete": True, "incomplete_reason": None, "wall_s": {}}

    def phase(self, name: str):
        return _Phase(self.result["wall_s"], name)

    def copy_passed(self, min_rate: float) -> bool:
        return self.result["copy_rate"] >= min_rate

    def cut(self, reason: str) -> None:
        self.result.update(complete=False, incomplete_reason=reason)

    def write(self) -> None:
        self.result["wall_s"]["total"] = time.perf_counter() - self.began
        (self.out / "eval.json").write_text(json.dumps(self.result, indent=2))

    def stop(self, reason: str) -> int:
        self.cut(reason)
        self.write()
        print(f"stopped: {reason}. {self.out / 'eval.json'} says complete: false.", file=sys.stderr)
        return 1

    def finish(self) -> int:
        wall = self.result["wall_s"]["total"]
        if not self.result["complete"]:
            print(f"INCOMPLETE, not a result: {self.result['incomplete_reason']} (see {self.out / 'eval.json'})",
                  file=sys.stderr)
            return 1
        print(f"wrote {self.out / 'eval.json'}, {self.out / 'curves.png'}; wall {wall:.0f} s")
        return 0


class _Phase:
    def __init__(self, times: dict[str, float], name: str):
        self.times, self.name = times, name

    def __enter__(self):
        self.t0 = time.perf_counter()

    def __exit__(self, *exc: Any) -> None:
        self.times[self.name] = self.times.get(self.name, 0.0) + time.perf_counter() - self.t0


def _command() -> str:
    return " ".join(["corl-gym" if sys.argv[0].endswith("corl-gym") else sys.argv[0], *sys.argv[1:]])


def reference_rewards(cfg: Any, rows: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """budget -> mean reward of answering alone and of always calling each expert, on the evaluated
    problems (the bench's scripted references, each expert's answer copied exactly): the ceiling of a
    single fixed choice per budget, which is what the controller can learn here."""
    from corl_gym.benchmarks.bench import run_references
    from corl_gym.data import load_problems

    ids = {r["problem_id"] for r in rows}
    problems = [p for p in load_problems(cfg.dataset) if p.id in ids]
    budgets = sorted({r["budget"] for r in rows}, key=["low", "medium", "high"].index)
    found, _, _ = run_references(cfg.pool, cfg.dataset, problems, budgets, cfg.seed, [])
    table: dict[str, dict[str, float]] = {b: {} for b in budgets}
    for budget in budgets:
        for policy in dict.fromkeys(r["policy"] for r in found):
            group = [r["reward"] for r in found if r["policy"] == policy and r["budget"] == budget]
            table[budget][policy] = sum(group) / max(len(group), 1)
    return table


def check_targets(sft: dict[str, dict[str, Any]], ppo: dict[str, dict[str, Any]], copy: float,
                  references: dict[str, dict[str, float]]) -> dict[str, Any]:
    """The tiny-cpu targets, each with the measured values."""
    budgets = [b for b in ("low", "medium", "high") if b in ppo]
    mean = lambda table: sum(table[b]["mean_reward"] for b in budgets) / len(budgets)  # noqa: E731
    costs = [ppo[b]["mean_cost_usd"] for b in budgets]
    calls = [ppo[b]["expert_call_ratio"] for b in budgets]
    ceiling = {b: max(references[b].values()) for b in budgets}
    return {
        "copy_rate_ge_0.95": {"met": copy >= 0.95, "value": copy},
        "ppo_mean_ge_sft_mean_plus_0.30": {"met": mean(ppo) >= mean(sft) + 0.30, "ppo": mean(ppo), "sft_start": mean(sft),
                                           "ceiling": sum(ceiling.values()) / len(budgets)},
        "ppo_low_ge_0.70": {"met": ppo["low"]["mean_reward"] >= 0.70, "value": ppo["low"]["mean_reward"]},
        "ppo_high_ge_0.90": {"met": ppo["high"]["mean_reward"] >= 0.90, "value": ppo["high"]["mean_reward"]},
        "over_budget_low_le_0.10": {"met": ppo["low"]["over_budget_rate"] <= 0.10, "value": ppo["low"]["over_budget_rate"]},
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
    from corl_gym.agents.ppo.logger import read_metrics

    ppo = read_metrics(out)
    sft, copy = _jsonl(out / "sft" / "sft_metrics.jsonl"), _jsonl(out / "sft" / "copy_metrics.jsonl")
    copy = [r for r in copy if "copy/loss" in r]
    fig, axes = plt.subplots(1, 4, figsize=(18, 3.8))
    axes[0].plot([r["step"] for r in copy], _smooth([r["copy/loss"] for r in copy], 25), label="copy pretraining")
    axes[0].plot([len(copy) + r["step"] for r in sft], _smooth([r["sft/loss"] for r in sft], 5), label="SFT")
    axes[0].set(title="copy pretraining, then SFT", xlabel="step", ylabel="cross-entropy")
    axes[0].legend()
    for budget in ("low", "medium", "high"):
        rows = [r for r in ppo if f"env/reward/{budget}" in r]
        axes[1].plot([r["step"] for r in rows], _smooth([r[f"env/reward/{budget}"] for r in rows]), label=budget)
        axes[2].plot([r["step"] for r in rows], _smooth([r[f"env/mean_cost_usd/{budget}"] for r in rows]), label=budget)
    axes[1].set(title="PPO rollout reward by budget (smoothed)", xlabel="iteration", ylabel="mean reward")
    axes[2].set(title="PPO rollout cost by budget (smoothed)", xlabel="iteration", ylabel="mean cost (simulated $)")
    if any(r.get(f"env/mean_cost_usd/{b}", 0) > 0 for r in ppo for b in ("low", "medium", "high")):
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

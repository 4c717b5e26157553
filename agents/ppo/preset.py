"""`corl-gym train --learner ppo --preset tiny-cpu`: the whole method on a laptop, in about 13 minutes on
2 idle CPU cores.

1. Build: a byte-level BPE tokenizer trained on the env's own texts and a ~1.3M-parameter Qwen2 with
   random weights (`agents.tiny`).
2. SFT (`agents.sft`): clone scripted routers on the training split of `synthetic` with `sim-paper`.
   The teachers answer by themselves 4 times in 7 and otherwise call one of the 3 experts (equally) and
   copy its boxed answer, whatever the budget. A window phase first trains on the last 64 tokens of the
   calling demonstrations (the copy, cheaply; see `agents.sft`), then full trajectories. The clone
   learns the grammar and the copy, answers by itself when greedy (a tiny model's own answers are
   almost always wrong: the weak controller alone), and leaves to RL which expert each budget affords.
3. Evaluate the SFT model (the starting point): held-out problems x low / medium / high, greedy.
4. PPO (`agents.ppo.train`) from the SFT model, budget modes mixed per episode.
5. Evaluate the PPO model the same way; write `eval.json` (both, per budget, and the targets' checks),
   `eval.md` (the bench's table), `curves.png`.

Problems are restricted to integer answers of at most 3 digits: the controller must copy an expert's
answer, and with numbers below 1000 one token each (`agents.tiny`) the copy is one or two tokens.
Training amounts are fixed (steps, iterations), sized for about 13 minutes on 2 idle cores, so results do
not depend on how busy the machine is (a shared machine takes longer instead of training less); PPO also
has a 20-minute wall-clock cap as a safety net, after which it checkpoints, stops and says so.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any, Sequence

from corl_gym.agents.ppo.config import PPOConfig, parse_config

PRESETS: dict[str, dict[str, Any]] = {
    "tiny-cpu": {
        "ppo": dict(
            out="runs/tiny-cpu", device="cpu", integer_answers=True, max_turns=2, num_envs=16, max_new_tokens=48,
            iterations=24, actor_lr=3e-4, critic_lr=1e-3, num_minibatches=2, update_epochs=1, kl_coef=0.001,
            ent_coef=0.0, save_every=4, time_limit_s=1200.0, tensorboard=True,
        ),
        "sft": dict(size="tiny-cpu", teachers="always-self=4,always:*", episodes=1200, epochs=1, batch_size=8, lr=3e-3,
                    warmup_steps=5, window=64, window_steps=400, window_batch_size=32),
        "eval": dict(limit=30, batch_size=45),
    },
}


def run_preset(name: str, argv: Sequence[str], prog: str | None = None) -> int:
    from corl_gym.agents.evaluate import evaluate, eval_summary, load_controller, write_report
    from corl_gym.agents.ppo.train import train
    from corl_gym.agents.sft import SFTConfig, run_sft

    preset = PRESETS[name]
    cfg = parse_config(PPOConfig, argv, prog, **preset["ppo"])
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    times: dict[str, float] = {}
    began = time.perf_counter()

    sft_dir = out / "sft"
    if not (cfg.resume and (sft_dir / "config.json").is_file()):
        t0 = time.perf_counter()
        shared = dict(pool=cfg.pool, dataset=cfg.dataset, test_fraction=cfg.test_fraction,
                      integer_answers=cfg.integer_answers, max_turns=cfg.max_turns, seed=cfg.seed, progress=cfg.progress)
        run_sft(SFTConfig(out=str(sft_dir), **shared, **preset["sft"]))
        times["sft"] = time.perf_counter() - t0

    eval_kwargs = dict(pool=cfg.pool, datasets=[cfg.dataset], test_fraction=cfg.test_fraction,
                       integer_answers=cfg.integer_answers, max_turns=cfg.max_turns, max_new_tokens=cfg.max_new_tokens,
                       seed=cfg.seed, **preset["eval"])
    t0 = time.perf_counter()
    sft_rows = evaluate(*load_controller(sft_dir), policy="sft", **eval_kwargs)
    times["eval_sft"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    actor_dir = train(dataclasses.replace(cfg, model=str(sft_dir), preset=""))
    times["ppo"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    ppo_rows = evaluate(*load_controller(actor_dir), policy="ppo", **eval_kwargs)
    times["eval_ppo"] = time.perf_counter() - t0
    times["total"] = time.perf_counter() - began

    markdown = write_report(sft_rows + ppo_rows, out, "eval_table")
    sft, ppo = eval_summary(sft_rows)[cfg.dataset], eval_summary(ppo_rows)[cfg.dataset]
    result = {"ppo": ppo, "sft_start": sft, "targets": check_targets(sft, ppo), "wall_s": times,
              "preset": name, "dataset": cfg.dataset, "pool": cfg.pool}
    (out / "eval.json").write_text(json.dumps(result, indent=2))
    plot_curves(out)
    print(markdown)
    print(json.dumps(result["targets"], indent=2))
    print(f"wrote {out / 'eval.json'}, {out / 'curves.png'}; wall {times['total']:.0f} s")
    return 0


def check_targets(sft: dict[str, dict[str, float]], ppo: dict[str, dict[str, float]]) -> dict[str, Any]:
    """The issue's tiny-cpu targets, checked on the evaluation numbers."""
    budgets = [b for b in ("low", "medium", "high") if b in ppo]
    calls = [ppo[b]["expert_call_ratio"] for b in budgets]
    costs = [ppo[b]["mean_cost_usd"] for b in budgets]
    return {
        "well_formed_ge_0.95": {b: ppo[b]["well_formed_rate"] >= 0.95 for b in budgets},
        "reward_above_sft": {b: ppo[b]["mean_reward"] > sft[b]["mean_reward"] for b in budgets},
        "expert_call_ratio_increasing": all(a < b for a, b in zip(calls, calls[1:])),
        "mean_cost_increasing": all(a < b for a, b in zip(costs, costs[1:])),
    }


def plot_curves(out: Path) -> Path | None:
    """`curves.png`: SFT loss, PPO reward and expert-call ratio by budget, KL and value loss."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    from corl_gym.agents.ppo.logger import read_metrics

    ppo = read_metrics(out)
    sft_path = out / "sft" / "sft_metrics.jsonl"
    sft = [json.loads(line) for line in sft_path.read_text().splitlines()] if sft_path.is_file() else []
    fig, axes = plt.subplots(1, 4, figsize=(18, 3.8))
    axes[0].plot([r["step"] for r in sft], [r["sft/loss"] for r in sft])
    axes[0].set(title="SFT loss (controller tokens)", xlabel="step", ylabel="cross-entropy")
    for budget in ("low", "medium", "high"):
        steps = [r["step"] for r in ppo if f"env/reward/{budget}" in r]
        axes[1].plot(steps, _smooth([r[f"env/reward/{budget}"] for r in ppo if f"env/reward/{budget}" in r]), label=budget)
        axes[2].plot(steps, _smooth([r[f"env/expert_call_ratio/{budget}"] for r in ppo if f"env/reward/{budget}" in r]), label=budget)
    axes[1].set(title="PPO rollout reward by budget (smoothed)", xlabel="iteration", ylabel="mean reward")
    axes[2].set(title="PPO expert-call ratio by budget (smoothed)", xlabel="iteration", ylabel="share of episodes calling")
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


def _smooth(values: list[float], k: int = 3) -> list[float]:
    return [sum(values[max(0, i - k + 1) : i + 1]) / len(values[max(0, i - k + 1) : i + 1]) for i in range(len(values))]

"""The PPO loop end to end on a micro model: metrics under veRL-style names, checkpoints that resume,
and `corl-gym eval --checkpoint` rows in the bench's format."""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from corl_gym.agents.ppo.config import PPOConfig  # noqa: E402
from corl_gym.agents.ppo.logger import read_metrics  # noqa: E402
from corl_gym.agents.ppo.train import train  # noqa: E402

NAMES = [
    "timing_s/gen", "timing_s/update_actor", "timing_s/env", "timing_s/step", "perf/throughput", "perf/mfu/actor",
    "actor/kl", "critic/vf_loss", "env/expert_call_ratio", "env/mean_cost_usd", "env/reward", "actor/pg_loss",
    "actor/entropy",
]


def test_train_logs_checkpoints_resumes_and_evaluates(micro_model_dir, tmp_path):
    out = tmp_path / "run"
    cfg = PPOConfig(model=str(micro_model_dir), out=str(out), device="cpu", iterations=2, num_envs=3, max_new_tokens=16,
                    max_turns=2, save_every=1, actor_lr=1e-3, critic_lr=1e-3, num_minibatches=2, progress=False,
                    integer_answers=True)
    actor_dir = train(cfg)
    rows = read_metrics(out)
    assert [r["step"] for r in rows] == [1, 2]
    for name in NAMES:
        assert name in rows[-1], name
    assert any(key.startswith("env/reward/") for key in rows[-1])  # reward by budget
    state = torch.load(out / "checkpoints" / "latest" / "state.pt", weights_only=False)
    assert state["iteration"] == 2 and (actor_dir / "config.json").is_file()

    train(PPOConfig(**{**cfg.__dict__, "iterations": 3, "resume": True}))
    assert [r["step"] for r in read_metrics(out)] == [1, 2, 3]
    assert torch.load(out / "checkpoints" / "latest" / "state.pt", weights_only=False)["iteration"] == 3
    optim = torch.load(out / "checkpoints" / "latest" / "optim.pt", weights_only=False)
    steps = {float(s["step"]) for s in optim["critic"]["state"].values()}
    assert steps == {6.0}  # 3 iterations x 2 minibatches: the resumed run continued the saved optimiser

    from corl_gym.cli import main

    eval_dir = tmp_path / "eval"
    flags = ["--limit", "2", "--max-new-tokens", "16", "--out", str(eval_dir)]
    assert main(["eval", "--checkpoint", str(out), *flags]) == 0
    table = [json.loads(line) for line in (eval_dir / "eval_rows.jsonl").read_text().splitlines()]
    assert len(table) == 6 and {r["budget"] for r in table} == {"low", "medium", "high"}
    keys = {"pool", "dataset", "seed", "policy", "budget", "problem_id", "correct", "reward", "cost_usd", "calls",
            "turns", "over_budget"}
    assert keys <= set(table[0])
    summary = json.loads((eval_dir / "eval.json").read_text())["synthetic"]
    assert set(summary["low"]) >= {"mean_reward", "accuracy", "mean_cost_usd", "expert_call_ratio", "well_formed_rate"}
    assert "| policy | budget |" in (eval_dir / "eval.md").read_text()


def test_cli_flags_come_from_the_config_dataclass(capsys):
    from corl_gym.agents.config import build_parser

    text = build_parser(PPOConfig).format_help()
    assert "--kl-coef" in text and "KL-to-reference penalty" in text and "--num-envs" in text
    assert PPOConfig().kl_coef == 0.001 and PPOConfig().gamma == 1.0 and PPOConfig().lam == 1.0

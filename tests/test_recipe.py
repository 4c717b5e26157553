"""The tiny-cpu recipe's control flow at toy sizes, through the learners' own `main`: the copy check stops
it before RL, a time cap makes a run incomplete, and a complete run's eval.json has every field per
policy and budget."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from corl_gym.agents import recipe  # noqa: E402
from corl_gym.agents.ppo import train as ppo  # noqa: E402

FIELDS = {"n", "mean_reward", "reward_se", "accuracy", "mean_cost_usd", "expert_call_ratio", "calls_per_expert",
          "over_budget_rate", "well_formed_rate"}


@pytest.fixture
def toy_preset(monkeypatch):
    """The tiny-cpu preset with toy amounts of work (its structure and settings otherwise unchanged)."""
    real = recipe.PRESETS["tiny-cpu"]
    toy = {
        "ppo": {**real["ppo"], "iterations": 2, "num_envs": 3, "num_minibatches": 1, "update_epochs": 1,
                "save_every": 1, "tensorboard": False},
        "sft": {**real["sft"], "episodes": 6, "epochs": 1, "batch_size": 3, "copy_short_steps": 2, "copy_long_steps": 1,
                "copy_rows": 1},
        "copy_check": {"problems": 6, "min_rate": 0.0},
        "eval": {"limit": 2, "batch_size": 6},
    }
    monkeypatch.setitem(recipe.PRESETS, "tiny-cpu", toy)
    return toy


def run(tmp_path, *flags):
    return ppo.main(["--preset", "tiny-cpu", "--out", str(tmp_path / "run"), "--quiet", *flags])


def test_a_complete_run_writes_every_field_per_policy_and_budget(toy_preset, tmp_path, capsys):
    assert run(tmp_path) == 0
    result = json.loads((tmp_path / "run" / "eval.json").read_text())
    assert result["complete"] is True and result["incomplete_reason"] is None
    for policy in ("sft_start", "ppo"):
        assert set(result[policy]) == {"low", "medium", "high"}
        for budget in ("low", "medium", "high"):
            assert FIELDS <= set(result[policy][budget]) and result[policy][budget]["n"] == 2
    assert 0.0 <= result["copy_rate"] <= 1.0 and result["copy_check"] == {"problems": 6, "min_rate": 0.0}
    assert {"sft", "copy_check", "eval_sft", "ppo", "eval_ppo", "total"} <= set(result["wall_s"])
    assert set(result["references"]["low"]) == {"always-self", "always:gpt-4.1-nano", "always:gpt-4.1", "always:o3"}
    targets = result["targets"]
    assert {"copy_rate_ge_0.95", "ppo_low_ge_0.70", "mean_cost_increasing_2x",
            "why_call_ratio_is_not_strictly_increasing"} <= set(targets)
    assert all(isinstance(v["met"], bool) for v in targets.values() if isinstance(v, dict))
    assert (tmp_path / "run" / "eval_table.md").is_file() and (tmp_path / "run" / "curves.png").is_file()
    settings = json.loads((tmp_path / "run" / "sft" / "corl_train.json").read_text())
    assert settings["prompt_style"] == "compact" and settings["call_query"] == "Solve it."
    assert settings["teachers_within_budget"] is True


def test_the_copy_check_stops_the_run_before_ppo(toy_preset, tmp_path, capsys):
    toy_preset["copy_check"]["min_rate"] = 0.95  # an untrained toy model copies nothing
    assert run(tmp_path) == 1
    result = json.loads((tmp_path / "run" / "eval.json").read_text())
    assert result["complete"] is False and "copy check failed" in result["incomplete_reason"]
    assert result["copy_rate"] < 0.95 and "ppo" not in result and "ppo" not in result["wall_s"]
    assert not (tmp_path / "run" / "metrics.jsonl").exists()
    assert "copy check failed" in capsys.readouterr().err


def test_a_run_cut_by_the_time_cap_is_incomplete_and_says_why(toy_preset, tmp_path, capsys):
    assert run(tmp_path, "--time-limit-s", "0.001") == 1
    result = json.loads((tmp_path / "run" / "eval.json").read_text())
    assert result["complete"] is False
    assert result["incomplete_reason"].startswith("PPO stopped at its 0 s time cap after 1 of 2 iterations")
    assert "INCOMPLETE, not a result" in capsys.readouterr().err


def test_the_grpo_preset_stops_at_the_same_copy_check(toy_preset, tmp_path, capsys):
    pytest.importorskip("trl")
    from corl_gym.agents import trl as grpo

    toy_preset["copy_check"]["min_rate"] = 0.95
    assert grpo.main(["--preset", "tiny-cpu", "--out", str(tmp_path / "grpo"), "--quiet"]) == 1
    result = json.loads((tmp_path / "grpo" / "eval.json").read_text())
    assert result["complete"] is False and result["incomplete_reason"].endswith("GRPO was not run")
    assert result["copy_rate"] < 0.95 and "grpo" not in result and "grpo" not in result["wall_s"]
    assert {"sft", "copy_check", "total"} <= set(result["wall_s"])


def test_an_unknown_preset_is_a_usage_error():
    from corl_gym.cli_args import UsageError

    with pytest.raises(UsageError, match="unknown preset 'huge'; presets: tiny-cpu"):
        ppo.main(["--preset", "huge"])

import json
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("stable_baselines3")
pytest.importorskip("sb3_contrib")

from corl_gym.agents.sb3 import SB3Config, SB3Policy, evaluate, load_policy, routing_env, train  # noqa: E402
from corl_gym.benchmarks.bench import BenchConfig, run_bench  # noqa: E402
from corl_gym.cli import main  # noqa: E402
from corl_gym.data import load_problems  # noqa: E402
from corl_gym.envs.features import problem_features  # noqa: E402
from corl_gym.envs.routing_env import CORLRoutingEnv  # noqa: E402
from corl_gym.envs.routing_env_v1 import CORLRoutingEnvV1  # noqa: E402
from corl_gym.experts import load_pool  # noqa: E402
from corl_gym.splits import split_problems  # noqa: E402

SMALL = dict(timesteps=1024, n_envs=4, n_steps=128, batch_size=64, train_limit=100, eval_episodes=20)


def _train(learner, out, **overrides):
    return train(SB3Config(learner=learner, out=str(out), **{**SMALL, **overrides}))


@pytest.fixture(scope="module")
def maskable(tmp_path_factory):
    return _train("sb3-maskable-ppo", tmp_path_factory.mktemp("maskable"))


@pytest.mark.parametrize("learner", ["sb3-ppo", "sb3-dqn"])
def test_unmasked_learners_train_save_and_load(learner, tmp_path):
    path = _train(learner, tmp_path)
    meta = json.loads(path.with_suffix(".json").read_text())
    assert path.name == f"{learner}.zip" and meta["learner"] == learner
    policy = load_policy(path)
    assert isinstance(policy, SB3Policy) and not policy.masked and policy.env_id == "CORL-Routing-v1"
    env = routing_env(policy.env_id, budget="mixed")
    observation, _ = env.reset(seed=0)
    assert 0 <= policy.act(observation, env.action_masks()) < env.action_space.n == 2 * env.K + 3


def test_saved_json_holds_config_and_training_summary(maskable):
    meta = json.loads(maskable.with_suffix(".json").read_text())
    assert meta["config"]["learner"] == "sb3-maskable-ppo" and meta["config"]["budget"] == "mixed"
    summary = meta["summary"]
    assert summary["train_problems"] == 100 and summary["episodes"] > 0
    assert set(summary["mean_reward_last_episodes"]) == {"low", "medium", "high"}  # mixed budgets in training
    for budget in ("low", "medium", "high"):
        assert 0.0 <= summary["eval_on_train"][budget]["reward"] <= 1.0


def test_round_trip_reproduces_the_training_evaluation(maskable):
    meta = json.loads(maskable.with_suffix(".json").read_text())
    pool = load_pool("sim-paper", seed=0)
    problems = split_problems(load_problems("synthetic"), 0.5)[0][:100]
    again = evaluate(load_policy(maskable.parent), pool, problems, ["low", "medium", "high"], 20, seed=0)
    assert again == meta["summary"]["eval_on_train"]


def test_training_uses_only_the_train_split(monkeypatch, tmp_path):
    seen = []
    original = CORLRoutingEnv.__init__

    def spy(self, *args, **kwargs):
        seen.extend(p.id for p in kwargs.get("problems") or [])
        original(self, *args, **kwargs)

    monkeypatch.setattr(CORLRoutingEnv, "__init__", spy)
    _train("sb3-maskable-ppo", tmp_path, timesteps=256, n_envs=2, eval_episodes=2)
    test_ids = {p.id for p in split_problems(load_problems("synthetic"), 0.5)[1]}
    assert seen and not test_ids & set(seen)


def test_maskable_adapter_never_picks_a_masked_action(maskable):
    policy = load_policy(maskable)
    assert policy.masked
    env = CORLRoutingEnvV1(budget="mixed")
    actions = env.action_space.n
    rng = np.random.default_rng(0)
    for episode in range(40):
        observation, _ = env.reset(seed=episode)
        preferred, _ = policy.model.predict(observation, deterministic=True, action_masks=np.ones(actions, bool))
        mask = rng.random(actions) < 0.5
        mask[0] = True  # submitting is always allowed
        mask[int(preferred)] = int(preferred) == 0  # forbid the action it would take unmasked
        action = policy.act(observation, mask)
        assert mask[action]
        assert int(preferred) == 0 or action != int(preferred)


def test_observation_size_mismatch_is_a_clear_error(maskable):
    policy = load_policy(maskable)
    with pytest.raises(ValueError, match="retrain"):
        policy.act(np.zeros(3, np.float32), np.ones(4, bool))


def test_errors_for_unknown_learner_and_missing_packages(monkeypatch, tmp_path):
    with pytest.raises(ValueError, match="sb3-maskable-ppo"):
        train(SB3Config(learner="sb3-a2c", out=str(tmp_path)))
    monkeypatch.setitem(sys.modules, "sb3_contrib", None)
    with pytest.raises(ImportError, match=r"pip install 'corl-gym\[sb3\]'"):
        train(SB3Config(out=str(tmp_path)))
    with pytest.raises(FileNotFoundError):
        load_policy(tmp_path / "nothing.zip")


def test_import_is_lazy():
    code = ("import sys, corl_gym, corl_gym.agents.sb3; "
            "print(any(m in sys.modules for m in ('torch', 'stable_baselines3', 'sb3_contrib')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


def test_cli_train_then_bench_the_saved_router(tmp_path, capsys):
    out = tmp_path / "router"
    flags = ["--timesteps", "512", "--train-limit", "100", "--out", str(out)]
    assert main(["train", "--learner", "sb3-maskable-ppo", *flags]) == 0
    path = out / "sb3-maskable-ppo.zip"
    assert path.is_file() and f"sb3:{path}" in capsys.readouterr().out
    result = run_bench(BenchConfig(policies=[f"sb3:{path}", "best-fixed"], limit=20, train_limit=100,
                                   out=str(tmp_path / "bench"), progress=False))
    rows = [r for r in result.rows if r["policy"] == f"sb3:{path}"]
    assert len(rows) == 20 * 3 and all(0.0 <= r["reward"] <= 1.0 for r in rows)
    # masked at low: only gpt-4.1-nano fits $0.001, so the router never calls the others there
    assert all(r["calls"]["gpt-4.1"] == r["calls"]["o3"] == 0 for r in rows if r["budget"] == "low")
    assert {s["policy"] for s in result.summary} == {f"sb3:{path}", "best-fixed", "always-self", "always:gpt-4.1-nano",
                                                     "always:gpt-4.1", "always:o3"}
    assert "| always-self (reference) |" in result.markdown and f"| sb3:{path} |" in result.markdown
    assert (tmp_path / "bench" / "summary.md").is_file()


def test_the_env_id_is_saved_with_the_model_and_the_bench_uses_it(tmp_path, maskable):
    v0 = _train("sb3-maskable-ppo", tmp_path / "v0", env_id="CORL-Routing-v0", timesteps=256, n_envs=2, eval_episodes=2)
    assert json.loads(v0.with_suffix(".json").read_text())["env_id"] == "CORL-Routing-v0"
    assert json.loads(maskable.with_suffix(".json").read_text())["env_id"] == "CORL-Routing-v1"
    assert load_policy(v0).env_id == "CORL-Routing-v0" and load_policy(maskable).env_id == "CORL-Routing-v1"
    alone = tmp_path / "alone" / "sb3-maskable-ppo.zip"  # no JSON beside it: the zip itself says v1
    alone.parent.mkdir()
    alone.write_bytes(maskable.read_bytes())
    assert load_policy(alone).env_id == "CORL-Routing-v1"
    old = load_policy(alone)
    del old.model.corl_env_id  # a model saved before v1 existed carries no env id: it is a v0 router
    old.model.save(tmp_path / "old.zip")
    (tmp_path / "old").mkdir()
    (tmp_path / "old.zip").rename(tmp_path / "old" / "sb3-maskable-ppo.zip")
    assert load_policy(tmp_path / "old").env_id == "CORL-Routing-v0"

    seen = []
    original = CORLRoutingEnv.reset

    def spy(self, **kwargs):
        seen.append(type(self).__name__)
        return original(self, **kwargs)

    CORLRoutingEnv.reset = spy
    try:
        result = run_bench(BenchConfig(policies=[f"sb3:{v0}", f"sb3:{maskable}"], budgets=["high"], limit=5,
                                       progress=False, references=False))
    finally:
        CORLRoutingEnv.reset = original
    assert seen == ["CORLRoutingEnv"] * 5 + ["CORLRoutingEnvV1"] * 5 and len(result.rows) == 10
    with pytest.raises(ValueError, match="CORL-Routing-v1, CORL-Routing-v0"):
        train(SB3Config(env_id="CORL-Routing-v2", out=str(tmp_path)))


def test_a_router_without_problem_features_keeps_that_choice(tmp_path):
    path = _train("sb3-maskable-ppo", tmp_path, features="none", timesteps=256, n_envs=2, eval_episodes=2)
    meta = json.loads(path.with_suffix(".json").read_text())
    with_features = CORLRoutingEnvV1(budget="mixed")
    assert meta["features"] == "none"
    assert meta["observation_size"] == with_features.observation_space.shape[0] - problem_features.size
    policy = load_policy(path)
    assert policy.features == "none"
    result = run_bench(BenchConfig(policies=[f"sb3:{path}"], budgets=["low"], limit=4, progress=False,
                                   references=False))
    assert len(result.rows) == 4
    with pytest.raises(ValueError, match="problem, none"):
        train(SB3Config(features="embeddings", out=str(tmp_path)))

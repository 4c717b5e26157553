import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import corl_gym  # noqa: F401  (registers the envs)
from corl_gym import verify
from corl_gym.data import Problem
from corl_gym.experts import ExpertReply, Pool, load_pool
from corl_gym.experts.base import Expert, ExpertSpec

INFO_KEYS = {
    "problem_id", "budget", "threshold_usd", "expert_names", "prices", "turn", "cost_usd", "step_cost_usd",
    "calls", "prompt_tokens", "completion_tokens", "verdict", "correct", "over_budget", "action_error",
    "expert_error",
}


def boxed(text):
    return verify.extract_answer(text)


def find_problem(env, want_o3_right=True):
    """The index of a problem where o3's simulated reply is (or is not) correct."""
    pool = env.unwrapped.pool
    for index, problem in enumerate(env.unwrapped.problems):
        right = verify.check(boxed(pool.experts["o3"].call(problem.problem, problem).text), problem.answer)
        if (right is verify.Verdict.CORRECT) == want_o3_right:
            return index
    raise AssertionError("no such problem")


def test_make_with_defaults_and_check_env():
    env = gym.make("CORL-Math-v0", budget="low")
    check_env(env.unwrapped)
    obs, info = env.reset(seed=0)
    assert isinstance(obs, str) and obs.endswith("\n\n")
    assert "Budget mode: low" in obs and "$0.0010" in obs and "o3:" in obs
    assert INFO_KEYS <= set(info)
    assert info["expert_names"] == ["gpt-4.1-nano", "gpt-4.1", "o3"]


def test_check_env_with_replay_pool(data_dir):
    env = gym.make("CORL-Math-v0", pool="llmrouter-math")
    check_env(env.unwrapped)
    _, info = env.reset(seed=1)
    assert info["problem_id"].startswith("llmrouter")


def test_o3_episode_rewarded_at_high_and_gated_at_low():
    env = gym.make("CORL-Math-v0", budget="high")
    index = find_problem(env)
    for budget, expected_reward in (("high", 1.0), ("low", 0.0)):
        obs, info = env.reset(seed=0, options={"problem_index": index, "budget": budget})
        obs, r, terminated, truncated, info = env.step(f'<call expert="o3">{env.unwrapped.problem.problem}</call>')
        assert (r, terminated, truncated) == (0.0, False, False)
        assert info["calls"]["o3"] == 1 and info["cost_usd"] == info["step_cost_usd"] > 0
        assert '<response expert="o3">' in obs and "<budget spent=" in obs
        value = boxed(obs.rsplit('<response expert="o3">', 1)[1])
        obs, r, terminated, truncated, info = env.step(f"<answer>\\boxed{{{value}}}</answer>")
        assert terminated and not truncated and info["correct"] and info["verdict"] == "CORRECT"
        assert r == expected_reward
        assert info["over_budget"] == (budget == "low")


def test_answering_without_a_call_costs_nothing():
    env = gym.make("CORL-Math-v0", budget="medium")
    _, info = env.reset(seed=3)
    gold = env.unwrapped.problem.answer
    _, r, terminated, _, info = env.step(f"<think>easy</think><answer>\\boxed{{{gold}}}</answer>")
    assert terminated and r == 1.0 and info["cost_usd"] == 0.0 and sum(info["calls"].values()) == 0


def test_invalid_turns_are_reported_and_truncate_after_max_turns():
    env = gym.make("CORL-Math-v0", max_turns=3)
    env.reset(seed=0)
    reasons = []
    for step, action in enumerate(["hello", '<call expert="gpt-9">q</call>', '<call expert="o3"> </call>']):
        obs, r, terminated, truncated, info = env.step(action)
        reasons.append(info["action_error"])
        assert r == 0.0 and not terminated and truncated == (step == 2)
        assert "<error>" in obs
    assert reasons == ["no_action", "unknown_expert", "empty_query"]
    with pytest.raises(RuntimeError, match="reset"):
        env.step("<answer>1</answer>")


def test_hard_cap_refuses_unaffordable_calls_for_free():
    env = gym.make("CORL-Math-v0", budget="low", hard_cap=True)
    env.reset(seed=0)
    obs, _, _, _, info = env.step('<call expert="o3">What is 1+1?</call>')
    assert info["action_error"] == "over_cap" and info["cost_usd"] == 0.0 and info["calls"]["o3"] == 0
    _, _, _, _, info = env.step('<call expert="gpt-4.1-nano">What is 1+1?</call>')
    assert info["action_error"] is None and info["calls"]["gpt-4.1-nano"] == 1


def test_same_seed_same_episode_and_render():
    env = gym.make("CORL-Math-v0", render_mode="ansi")
    first = env.reset(seed=42)
    second = env.reset(seed=42)
    assert first[0] == second[0] and first[1]["problem_id"] == second[1]["problem_id"]
    env.step('<call expert="gpt-4.1-nano">hi</call>')
    assert "[turn 1/4" in env.render()


def test_random_and_hostile_actions_never_raise():
    env = gym.make("CORL-Math-v0", max_turns=4)
    rng = np.random.default_rng(0)
    hostile = [
        "", "\x00\x01\x02", "\U0001F600" * 1000, "x" * 100_000, "<answer>" * 1000, "</call>" * 1000,
        '<call expert="o3">', "<answer><answer></answer>", '<call expert="">q</call>', "<think>",
        '<call expert="o3"><answer>1</answer></call>', "<answer>\\boxed{" + "{" * 5000 + "</answer>",
        '<call expert="o3\\" onload=">q</call>', "<ANSWER>1</ANSWER>", "\ud800", "<answer>1e999999</answer>",
    ]
    env.reset(seed=0)
    env.action_space.seed(0)  # samples are drawn from the space's own generator, not the env's
    done = False
    for step in range(10_000):
        if done:
            env.reset()
        if step % 3 == 0:
            action = hostile[int(rng.integers(len(hostile)))]
        else:
            action = env.action_space.sample()
        _, r, terminated, truncated, info = env.step(action)
        assert INFO_KEYS <= set(info) and np.isfinite(r)
        done = terminated or truncated


def test_non_text_actions_are_invalid_turns():
    env = gym.make("CORL-Math-v0").unwrapped
    env.reset(seed=0)
    for action in (None, 3, [1, 2], {"a": 1}):
        _, _, _, _, info = env.step(action)
        assert info["action_error"] is not None
        env.reset()


class FailingExpert(Expert):
    def call(self, query, problem):
        return ExpertReply(text="", prompt_tokens=10, completion_tokens=0, cost_usd=0.0005, error="HTTP 503")


class RaisingExpert(Expert):
    def call(self, query, problem):
        raise ConnectionError("boom")


def test_failed_calls_are_shown_charged_and_never_crash():
    base = load_pool("sim-paper")
    pool = Pool(
        name="faulty",
        controller=base.controller,
        experts={
            "flaky": FailingExpert(ExpertSpec("flaky", "test", "m", price_in=1.0, price_out=1.0)),
            "broken": RaisingExpert(ExpertSpec("broken", "test", "m")),
        },
        budgets=dict(base.budgets),
    )
    env = gym.make("CORL-Math-v0", pool=pool, budget="high")
    env.reset(seed=0)
    obs, _, _, _, info = env.step('<call expert="flaky">q</call>')
    assert "[the call failed: HTTP 503]" in obs and info["expert_error"] == "HTTP 503"
    assert info["cost_usd"] == pytest.approx(0.0005) and info["calls"]["flaky"] == 1
    obs, _, _, _, info = env.step('<call expert="broken">q</call>')
    assert "ConnectionError: boom" in info["expert_error"] and info["calls"]["broken"] == 1


def test_penalty_options_and_format_reward():
    env = gym.make("CORL-Math-v0", budget="low", penalty="linear", penalty_kwargs={"weight": 0.5}, format_reward=0.1)
    index = find_problem(env)
    env.reset(seed=0, options={"problem_index": index})
    obs, *_ = env.step(f'<call expert="gpt-4.1-nano">{env.unwrapped.problem.problem}</call>')
    _, r, _, _, info = env.step(f"<answer>\\boxed{{{env.unwrapped.problem.answer}}}</answer>")
    assert r == pytest.approx(1.0 - 0.5 * info["cost_usd"] / 0.001 + 0.1)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"dataset": "nope"}, "synthetic"),
        ({"pool": "nope"}, "sim-paper"),
        ({"budget": "nope"}, "low, medium, high, mixed"),
        ({"penalty": "nope"}, "hard, soft, linear"),
    ],
)
def test_unknown_names_list_the_valid_ones(kwargs, message):
    with pytest.raises(ValueError, match=message):
        gym.make("CORL-Math-v0", **kwargs)


def test_custom_problem_list():
    problems = [Problem("p1", "What is 6 times 7?", "42", level=1)]
    env = gym.make("CORL-Math-v0", problems=problems, budget=0.002)
    _, info = env.reset(seed=0)
    assert info["problem_id"] == "p1" and info["budget"] == "custom" and info["threshold_usd"] == 0.002
    _, r, *_ = env.step("<answer>$42$</answer>")
    assert r == 1.0


def test_import_does_not_load_heavy_libraries():
    code = (
        "import sys, gymnasium as gym, corl_gym; gym.make('CORL-Math-v0').reset(seed=0); "
        "heavy = [m for m in ('torch', 'transformers', 'vllm', 'trl', 'stable_baselines3') if m in sys.modules]; "
        "print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"

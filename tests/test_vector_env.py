import asyncio

import gymnasium as gym
import numpy as np
import pytest

import corl_gym  # noqa: F401
from corl_gym.envs.math_env import CORLMathEnv
from corl_gym.envs.vector import CORLMathVectorEnv
from corl_gym.experts import ExpertReply, Pool, load_pool
from corl_gym.experts.base import Expert, ExpertSpec
from corl_gym.protocol import CallAction


class SlowExpert(Expert):
    """Counts how many of its calls are in flight at once."""

    in_flight = 0
    peak = 0

    async def acall(self, query, problem):
        SlowExpert.in_flight += 1
        SlowExpert.peak = max(SlowExpert.peak, SlowExpert.in_flight)
        await asyncio.sleep(0.05)
        SlowExpert.in_flight -= 1
        return ExpertReply(text=f"\\boxed{{{problem.answer}}}", prompt_tokens=10, completion_tokens=10, cost_usd=0.0001)


def slow_pool():
    base = load_pool("sim-paper")
    spec = ExpertSpec("slow", "test", "slow", price_in=1.0, price_out=1.0, options={"concurrency": 64})
    return Pool("slow", base.controller, {"slow": SlowExpert(spec)}, dict(base.budgets))


def test_batched_step_makes_all_calls_concurrently():
    SlowExpert.peak = 0
    envs = CORLMathVectorEnv(8, pool=slow_pool(), budget="high")
    envs.reset(seed=0)
    obs, rewards, terminated, truncated, info = envs.step(['<call expert="slow">q</call>'] * 8)
    assert SlowExpert.peak == 8
    assert all('<response expert="slow">' in o for o in obs)
    assert np.all(info["calls"]["slow"] == 1) and np.allclose(info["cost_usd"], 0.0001)


def test_make_vec_autoresets_on_the_next_step():
    envs = gym.make_vec("CORL-Math-v0", num_envs=3, vectorization_mode="vector_entry_point", budget="low")
    obs, info = envs.reset(seed=7)
    assert len(obs) == 3 and len(set(info["problem_id"])) >= 2
    actions = ["<answer>1</answer>", '<call expert="gpt-4.1-nano">q</call>', "no action"]
    obs, rewards, terminated, truncated, info = envs.step(actions)
    assert terminated.tolist() == [True, False, False]
    assert info["action_error"][2] == "no_action" and info["calls"]["gpt-4.1-nano"][1] == 1
    obs, rewards, terminated, truncated, info = envs.step(actions)
    assert rewards[0] == 0.0 and info["turn"][0] == 0  # env 0 was reset
    envs.close()


def test_vector_and_single_envs_agree_for_the_same_seed():
    single = gym.make("CORL-Math-v0", budget="medium")
    envs = CORLMathVectorEnv(2, budget="medium")
    obs, info = envs.reset(seed=[11, 12])
    for i, seed in enumerate([11, 12]):
        o, inf = single.reset(seed=seed)
        assert o == obs[i] and inf["problem_id"] == info["problem_id"][i]


class BadCostExpert(Expert):
    """Replies with a cost that is not a number, as a tampered cache row could."""

    def call(self, query, problem):
        reply = ExpertReply(text=f"\\boxed{{{problem.answer}}}", prompt_tokens=10, completion_tokens=10, cost_usd=0.0)
        object.__setattr__(reply, "cost_usd", float("nan") if query == "nan" else "0.01")
        return reply


def test_batched_calls_check_replies_and_take_parsed_actions():
    from corl_gym.protocol import AnswerAction, CallAction

    base = load_pool("sim-paper")
    pool = Pool("bad", base.controller, {"bad": BadCostExpert(ExpertSpec("bad", "test", "m"))}, dict(base.budgets))
    envs = CORLMathVectorEnv(3, pool=pool, budget="high")
    envs.reset(seed=0)
    actions = [CallAction("bad", "nan"), CallAction("bad", "str </call> <answer>1</answer>"), AnswerAction("1 </call>")]
    obs, rewards, terminated, truncated, info = envs.step(actions)
    assert terminated.tolist() == [False, False, True] and info["action_error"].tolist() == [None, None, None]
    # whichever layer catches the bad cost first (the pool or the env), the call fails and charges nothing bad
    assert info["expert_error"][0] is not None and info["expert_error"][1] is not None
    assert np.all(np.isfinite(info["cost_usd"])) and np.all(info["cost_usd"] >= 0)
    assert info["calls"]["bad"].tolist() == [1, 1, 0] and all("[the call failed: " in o for o in obs[:2])


def test_reset_options_pin_each_sub_env_or_all_of_them():
    envs = CORLMathVectorEnv(3, budget="mixed", limit=10)
    pins = [{"problem_index": 4, "budget": "low"}, None, {"problem_index": 7, "budget": "high"}]
    _, info = envs.reset(seed=5, options=pins)
    alone = [CORLMathEnv(budget="mixed", limit=10).reset(seed=5 + i, options=pin)[1] for i, pin in enumerate(pins)]
    assert list(info["problem_id"]) == [a["problem_id"] for a in alone]
    assert list(info["budget_mode"]) == [a["budget_mode"] for a in alone]
    assert info["budget_mode"][0] == "low" and info["budget_mode"][2] == "high"
    _, info = envs.reset(seed=0, options={"budget": "medium"})
    assert list(info["budget_mode"]) == ["medium"] * 3
    with pytest.raises(ValueError, match="one reset options dict per sub-env"):
        envs.reset(options=[{}, {}])
    assert envs.expert_names == ["gpt-4.1-nano", "gpt-4.1", "o3"]
    envs.close()


def test_last_replies_are_each_sub_envs_checked_reply_to_its_latest_call():
    envs = CORLMathVectorEnv(2, budget="high", limit=5)
    envs.reset(seed=0)
    assert envs.last_replies == (None, None)
    envs.step([CallAction("gpt-4.1-nano", "What is 2+2?"), "<answer>\\boxed{4}</answer>"])
    called, answered = envs.last_replies
    assert called is not None and called.error is None and called.text and answered is None
    envs.close()

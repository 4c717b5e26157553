import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import corl_gym  # noqa: F401
from corl_gym import verify
from corl_gym.envs.features import problem_features


def test_check_env_and_spaces():
    env = gym.make("CORL-Routing-v0", budget="mixed")
    check_env(env.unwrapped)
    assert env.action_space == gym.spaces.Discrete(4)
    obs, info = env.reset(seed=0)
    assert obs.shape == env.observation_space.shape and obs.dtype == np.float32
    assert env.observation_space.contains(obs)


def test_check_env_with_replay_pool(data_dir):
    env = gym.make("CORL-Routing-v0", pool="llmrouter-math")
    check_env(env.unwrapped)


def test_same_reward_and_cost_as_the_text_env():
    routing = gym.make("CORL-Routing-v0", budget="high").unwrapped
    text = gym.make("CORL-Math-v0", budget="high").unwrapped
    for index in range(30):
        routing.reset(seed=index, options={"problem_index": index})
        _, _, _, _, r_info = routing.step(3)  # o3
        _, r_reward, terminated, _, r_info = routing.step(0)
        assert terminated
        text.reset(seed=index, options={"problem_index": index})
        text.step(f'<call expert="o3">{text.problem.problem}</call>')
        answer = verify.extract_answer(text.last_reply.text)
        _, t_reward, _, _, t_info = text.step(f"<answer>\\boxed{{{answer}}}</answer>")
        assert (r_reward, r_info["cost_usd"], r_info["correct"]) == (t_reward, t_info["cost_usd"], t_info["correct"])


def test_submitting_first_uses_the_controllers_own_answer_for_free():
    env = gym.make("CORL-Routing-v0", budget="low").unwrapped
    _, info = env.reset(seed=1)
    own = info["candidate"]
    _, reward, terminated, _, info = env.step(0)
    assert terminated and info["cost_usd"] == 0.0
    assert reward == float(verify.is_equivalent(own, env.problem.answer))


def test_action_masks_follow_the_budget_and_the_step_limit():
    env = gym.make("CORL-Routing-v0", budget="low").unwrapped
    env.reset(seed=0)
    mask = env.action_masks()
    assert mask.tolist() == [True, True, False, False]  # only gpt-4.1-nano fits $0.001
    env = gym.make("CORL-Routing-v0", budget="high", max_steps=2).unwrapped
    env.reset(seed=0)
    assert env.action_masks().all()
    _, _, _, _, info = env.step(1)
    assert info["action_mask"].tolist() == [True, False, False, False]  # last step: submit only


def test_candidate_follows_the_latest_expert_and_truncation_earns_nothing():
    env = gym.make("CORL-Routing-v0", budget="high", max_steps=2).unwrapped
    env.reset(seed=0)
    obs, _, _, _, info = env.step(2)
    problem = env.problem
    assert info["candidate"] == verify.extract_answer(env.pool.experts["gpt-4.1"].call(problem.problem, problem).text)
    K = 3
    source = obs[4 + 1 + 1 + K + K : 4 + 1 + 1 + K + K + K + 1]
    assert source.tolist() == [0, 0, 1, 0]
    _, reward, terminated, truncated, _ = env.step(1)
    assert truncated and not terminated and reward == 0.0
    with pytest.raises(ValueError, match="0..3"):
        env.reset(seed=0)
        env.step(7)


def test_pluggable_feature_function():
    def two_features(problem):
        return np.array([len(problem.problem) % 2, 0.5], dtype=np.float32)

    env = gym.make("CORL-Routing-v0", features=two_features)
    default = gym.make("CORL-Routing-v0")
    assert default.observation_space.shape[0] - env.observation_space.shape[0] == problem_features.size - 2
    obs, _ = env.reset(seed=0)
    assert obs[-1] == pytest.approx(0.5)

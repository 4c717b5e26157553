from fractions import Fraction

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import corl_gym  # noqa: F401

pytest.importorskip("transformers", reason="token mode needs the `train` extra (transformers)")


def test_trajectory_is_prompt_then_turns_then_env_ids_with_a_controller_mask(tokenizer):
    env = gym.make("CORL-Math-v0", tokenizer=tokenizer, budget="high")
    obs, info = env.reset(seed=0)
    prompt_ids = info["env_token_ids"]
    assert list(obs) == prompt_ids
    text = tokenizer.decode(prompt_ids)
    assert text.startswith("<|im_start|>system\n") and text.endswith("<|im_start|>assistant\n")

    trajectory, mask = list(prompt_ids), [0] * len(prompt_ids)
    turns = [
        tokenizer.encode('<think>check</think><call expert="gpt-4.1-nano">What is 1+1?</call>'),
        # odd but valid ids: the env must append them verbatim, not re-tokenise the decoded text
        tokenizer.encode("<answer>\\boxed{") + tokenizer.encode("2") + tokenizer.encode("}</answer>"),
    ]
    for turn in turns:
        obs, reward, terminated, truncated, info = env.step(np.asarray(turn))
        trajectory += turn + info["env_token_ids"]
        mask += [1] * len(turn) + [0] * len(info["env_token_ids"])
        assert list(obs) == trajectory
        if terminated or truncated:
            break
    assert terminated and len(mask) == len(trajectory)
    response = tokenizer.decode([t for t, m in zip(trajectory, mask) if m == 0][len(prompt_ids):])
    assert '<response expert="gpt-4.1-nano">' in response and "<budget spent=" in response
    assert tokenizer.decode([t for t, m in zip(trajectory, mask) if m == 1]).startswith("<think>check</think>")


def test_token_mode_passes_check_env_and_accepts_text_or_bad_ids(tokenizer):
    env = gym.make("CORL-Math-v0", tokenizer=tokenizer)
    check_env(env.unwrapped)
    env.reset(seed=0)
    _, _, _, _, info = env.step([-5, 10**9, 3])  # out-of-vocabulary ids are dropped, not a crash
    assert info["action_error"] == "no_action"
    _, _, _, _, info = env.step("\ud800 <answer>1</answer>")
    assert info["verdict"] is not None


@pytest.mark.parametrize(
    "ids, reason",
    [
        ([2**70], "no_action"), ([-(2**70)], "no_action"),  # beyond int64: out of vocabulary, dropped
        ([float("inf")], "malformed_tag"), ([float("-inf"), 3], "malformed_tag"), ([float("nan")], "malformed_tag"),
        ([1.7, 2.2], "malformed_tag"), (["12"], "malformed_tag"), (np.array([True, False]), "malformed_tag"),
        ([[1, 2], [3]], "malformed_tag"),
        (None, "malformed_tag"), ({"ids": [1]}, "malformed_tag"), (np.array([1 + 2j]), "malformed_tag"),
        ([Fraction(10**400, 3)], "malformed_tag"), ([Fraction(10**400)], "malformed_tag"),  # past float's range
    ],
)
def test_token_ids_that_are_not_integers_or_overflow_are_invalid_turns(tokenizer, ids, reason):
    env = gym.make("CORL-Math-v0", tokenizer=tokenizer).unwrapped
    obs, _ = env.reset(seed=0)
    new_obs, reward, terminated, _, info = env.step(ids)
    assert info["action_error"] == reason and not terminated and reward == 0.0
    assert list(new_obs[: len(obs)]) == list(obs) and list(new_obs[len(obs) :]) == info["env_token_ids"]


def test_non_integral_ids_are_never_truncated_into_an_action(tokenizer):
    env = gym.make("CORL-Math-v0", tokenizer=tokenizer).unwrapped
    answer = tokenizer.encode("<answer>\\boxed{2}</answer>")
    env.reset(seed=0)
    _, _, terminated, _, info = env.step(np.asarray(answer, dtype=np.float64) + 0.3)
    assert not terminated and info["action_error"] == "malformed_tag"
    _, _, terminated, _, info = env.step(np.asarray(answer, dtype=np.float64))  # whole floats are ids
    assert terminated and info["verdict"] is not None


def test_parsed_actions_are_appended_as_their_canonical_text(tokenizer):
    from corl_gym.protocol import AnswerAction, CallAction

    env = gym.make("CORL-Math-v0", tokenizer=tokenizer, budget="high").unwrapped
    obs, _ = env.reset(seed=0)
    query = "What is 1+1? <answer>5</answer>"
    new_obs, _, terminated, _, info = env.step(CallAction("gpt-4.1-nano", query))
    assert not terminated and info["calls"]["gpt-4.1-nano"] == 1
    turn = list(new_obs[len(obs) : len(new_obs) - len(info["env_token_ids"])])
    assert turn == tokenizer.encode(f'<call expert="gpt-4.1-nano">{query}</call>', add_special_tokens=False)
    _, _, terminated, _, info = env.step(AnswerAction("\\boxed{2}"))
    assert terminated and info["action_error"] is None


def test_str_and_parsed_turns_over_the_length_cap_are_refused_in_token_mode(tokenizer):
    from corl_gym.envs.math_env import MAX_ACTION_CHARS
    from corl_gym.protocol import AnswerAction, CallAction

    env = gym.make("CORL-Math-v0", tokenizer=tokenizer, budget="high").unwrapped
    for action in (CallAction("gpt-4.1-nano", "q" * MAX_ACTION_CHARS), AnswerAction("1" * MAX_ACTION_CHARS),
                   "<answer>1</answer>" + " " * MAX_ACTION_CHARS):
        obs, _ = env.reset(seed=0)
        new_obs, _, terminated, _, info = env.step(action)
        assert info["action_error"] == "too_long" and not terminated and info["calls"]["gpt-4.1-nano"] == 0
        assert len(new_obs) == len(obs) + len(info["env_token_ids"])  # only the corrective message was appended


def test_an_expert_reply_cannot_forge_env_markup_in_token_mode(tokenizer):
    from tests.test_math_env import FORGERY, SIX_TIMES_SEVEN, forged, scripted_pool

    env = gym.make("CORL-Math-v0", tokenizer=tokenizer, pool=scripted_pool(forged(text=FORGERY)),
                   problems=SIX_TIMES_SEVEN, budget="high")
    env.reset(seed=0)
    _, _, _, _, info = env.step(tokenizer.encode('<call expert="echo">q</call>'))
    block = tokenizer.decode(info["env_token_ids"]).lower()
    assert block.count("</response") == 1 and block.count("<budget") == 1 and "<error" not in block
    assert "&lt;/response>" in block and "&lt;error>" in block


def test_compact_style_in_token_mode_and_in_the_vector_env(tokenizer):
    from corl_gym.envs.vector import CORLMathVectorEnv

    env = gym.make("CORL-Math-v0", tokenizer=tokenizer, prompt_style="compact", budget="low")
    check_env(env.unwrapped)
    obs, info = env.reset(seed=0)
    assert "Budget low: $0.0010" in tokenizer.decode(list(obs))
    envs = CORLMathVectorEnv(2, tokenizer=tokenizer, prompt_style="compact", budget="high")
    obs, info = envs.reset(seed=0)
    assert all("Budget high: $0.0500" in tokenizer.decode(list(o)) for o in obs)
    obs, *_ = envs.step([tokenizer.encode('<call expert="o3">Solve it.</call>')] * 2)
    assert all('<budget spent="$' in tokenizer.decode(list(o)) and "left=" in tokenizer.decode(list(o)) for o in obs)
    envs.close()

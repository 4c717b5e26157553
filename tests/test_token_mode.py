import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import corl_gym  # noqa: F401
from tests.tiny import make_tokenizer

pytest.importorskip("transformers", reason="token mode needs the `train` extra (transformers)")


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    return make_tokenizer(tmp_path_factory.mktemp("tok"))


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

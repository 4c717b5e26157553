"""Step-for-step regression digests: seeded random runs of the envs, hashed (observations, rewards, episode
ends, infos, action masks) and compared with digests recorded before the envs' per-step work was made
cheaper. Any change in what an episode shows or pays changes a digest; a deliberate change of behaviour
must re-record them (`python -m tests.test_env_replay_digests`) and say why in its commit."""

from __future__ import annotations

import hashlib
from typing import Any

import gymnasium as gym
import numpy as np
import pytest

import corl_gym  # noqa: F401  (registers the envs)

STEPS = 1500
# A generous checker deadline: a TIMEOUT on a loaded machine would change a verdict, and so a digest.
VERIFY_TIMEOUT = 60.0

RECORDED = {
    ("CORL-Math-v0", "sim-paper"):
        "d7b12aa15c41898b4082bd2d940cf6f5d7cb844f3ec49d4560448f5058465eae",
    ("CORL-Routing-v0", "sim-paper"):
        "c36799dbf9e0bd9c06c1bfe7ff657099203521db5ac30d5886417cace829e481",
    ("CORL-Routing-v1", "sim-paper"):
        "455c6c23709c05be26320175e0317a4056e9f0f15d56623a7aaccc8d696a0076",
    ("CORL-Routing-v0", "zeroeval-math-l5"):
        "f8964dffb8029168c2da0f594fda51ba3a2477f413b15023180fd436ad69e7c5",
    ("CORL-Routing-v1", "zeroeval-math-l5"):
        "4aacad04176873668e94a421d2433c0947f26a510b747d844f1733db07d2cd42",
}


def _canonical(value: Any) -> Any:
    """A value as plain, ordered Python data whose repr is the same on every run."""
    if isinstance(value, np.ndarray):
        return ("ndarray", value.dtype.str, value.shape, value.tolist())
    if isinstance(value, dict):
        return sorted((key, _canonical(item)) for key, item in value.items())
    if isinstance(value, (list, tuple)):
        return type(value).__name__, [_canonical(item) for item in value]
    return value


def _text_action(env: Any, rng: np.random.Generator) -> str:
    """The env-speed benchmark's random text turns: a call, a right or wrong answer, or no action."""
    choice = rng.integers(4)
    if choice == 0:
        names = env.expert_names
        return f'<call expert="{names[rng.integers(len(names))]}">{env.problem.problem}</call>'
    if choice == 1:
        return f"<think>short</think><answer>\\boxed{{{env.problem.answer}}}</answer>"
    return "<answer>\\boxed{7}</answer>" if choice == 2 else "no tag at all"


def run_digest(env_id: str, pool: str, steps: int = STEPS, seed: int = 0) -> str:
    """The sha256 of a seeded uniform-random run of `steps` steps, resets included."""
    env = gym.make(env_id, pool=pool, budget="mixed", verify_timeout=VERIFY_TIMEOUT).unwrapped
    rng = np.random.default_rng(seed)
    routing = env_id != "CORL-Math-v0"
    digest = hashlib.sha256()

    def feed(*values: Any) -> None:
        digest.update(repr(_canonical(values)).encode("utf-8"))

    observation, info = env.reset(seed=seed)
    feed(observation, info, env.action_masks() if routing else None)
    for _ in range(steps):
        action = int(rng.integers(env.action_space.n)) if routing else _text_action(env, rng)
        observation, reward, terminated, truncated, info = env.step(action)
        feed(observation, reward, terminated, truncated, info, env.action_masks() if routing else None)
        if terminated or truncated:
            observation, info = env.reset()
            feed(observation, info, env.action_masks() if routing else None)
    env.close()
    return digest.hexdigest()


@pytest.mark.parametrize("env_id, pool", [key for key in RECORDED if key[1] == "sim-paper"])
def test_seeded_random_runs_are_unchanged_step_for_step(env_id, pool):
    assert run_digest(env_id, pool) == RECORDED[(env_id, pool)]


@pytest.mark.parametrize("env_id, pool", [key for key in RECORDED if key[1] != "sim-paper"])
def test_seeded_random_runs_on_the_replay_pool_are_unchanged_step_for_step(env_id, pool, data_dir, monkeypatch):
    monkeypatch.setenv("CORL_DATA_DIR", str(data_dir))
    assert run_digest(env_id, pool) == RECORDED[(env_id, pool)]


if __name__ == "__main__":  # re-record (see the module docstring)
    for key in RECORDED:
        print(f'    ("{key[0]}", "{key[1]}"):\n        "{run_digest(*key)}",')

"""One benchmark episode of a policy, as a row of `results.jsonl`."""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from corl_gym.agents.router_base import Router
from corl_gym.envs.math_env import CORLMathEnv
from corl_gym.envs.routing_env import CORLRoutingEnv


class RoutingPolicy(Protocol):
    """A policy of `CORL-Routing-v0` or `-v1` (an SB3 router, say): an action from an observation and its mask."""

    def act(self, observation: np.ndarray, action_mask: np.ndarray) -> int: ...


def run_episode(env: CORLMathEnv, router: Router, seed: int, options: dict[str, Any]) -> dict[str, Any]:
    """One episode of a text-env router; returns the row's episode fields."""
    observation, info = env.reset(seed=seed, options=options)
    router.reset(env, info)
    reward, done, action_errors = 0.0, False, 0
    while not done:
        observation, reward, terminated, truncated, info = env.step(router.act(observation, info))
        action_errors += info["action_error"] is not None
        done = terminated or truncated
    return _row(info, seed, reward, action_errors)


def run_routing_episode(env: CORLRoutingEnv, policy: RoutingPolicy, seed: int,
                        options: dict[str, Any]) -> dict[str, Any]:
    """One episode of a routing-env policy; the same row fields as `run_episode`."""
    observation, info = env.reset(seed=seed, options=options)
    reward, done = 0.0, False
    while not done:
        observation, reward, terminated, truncated, info = env.step(policy.act(observation, env.action_masks()))
        done = terminated or truncated
    return _row(info, seed, reward, 0)


def _row(info: dict[str, Any], seed: int, reward: float, action_errors: int) -> dict[str, Any]:
    return {
        "problem_id": info["problem_id"],
        "episode_seed": seed,
        "correct": info["correct"],
        "verdict": info["verdict"],
        "reward": float(reward),
        "cost_usd": info["cost_usd"],
        "controller_cost_usd": info.get("controller_cost_usd", 0.0),
        "threshold_usd": info["threshold_usd"],
        "over_budget": info["over_budget"],
        "calls": info["calls"],
        "turns": info["turn"],
        "action_errors": action_errors,
    }

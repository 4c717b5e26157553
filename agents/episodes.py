"""One episode of a routing policy as a row of the bench's results, and the rows of the reference
policies that the curve metrics need.

`run_episode` plays a text-env router (`agents.routers.Router`, a prompted API controller) in
`CORL-Math-v0`; `run_routing_episode` a routing-env policy (an SB3 router) in `CORL-Routing-v0`/`-v1`;
both return the same fields. A row becomes the bench's once it also says its pool, dataset, seed,
policy and budget (`run_references` adds them).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, Protocol

import numpy as np

from corl_gym.agents.router_base import Router
from corl_gym.agents.routers import make_router
from corl_gym.cli_args import budget_label
from corl_gym.data import Problem
from corl_gym.envs.math_env import CORLMathEnv
from corl_gym.envs.routing_env import CORLRoutingEnv
from corl_gym.experts import Pool, load_pool


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


def bench_row(base: dict[str, Any], policy: str, budget: str | float, seed: int, index: int,
              play: Callable[[int, dict[str, Any]], dict[str, Any]]) -> dict[str, Any]:
    """The bench's row of `policy` on problem `index` at `budget`: `play(episode_seed, options)` (a
    `run_episode` or `run_routing_episode` with its env and policy bound) with the episode seed
    `seed + index` and the problem pinned by index, under `base` (pool, dataset, seed). The benchmark and
    `run_references` both build their rows here, so a reference row is the bench's row."""
    episode = play(seed + index, {"problem_index": index, "budget": budget})
    return {**base, "policy": policy, "budget": budget_label(budget), **episode}


def text_env(pool: Pool, problems: Sequence[Problem], max_turns: int | None = None) -> CORLMathEnv:
    """The text env a router plays in: by default room for one call to every expert, then the answer."""
    return CORLMathEnv(pool=pool, problems=list(problems), max_turns=max_turns or len(pool.experts) + 1)


def reference_policies(policies: Sequence[str], pool: Pool, pool_name: str) -> tuple[list[str], str | None]:
    """The reference policies the curve metrics need and `policies` lack (`always-self`, the weak end, and
    every `always:<expert>`, the strong end); or none and why not, when the pool's experts are live
    (running them would cost money)."""
    missing = [] if "always-self" in policies else ["always-self"]
    if not any(p.startswith("always:") for p in policies):
        missing += [f"always:{e}" for e in pool.expert_names()]
    if not missing or pool.simulated:
        return missing, None
    return [], (f"curve metrics not computed: they need {', '.join(missing)} as reference points, and pool "
                f"{pool_name}'s experts are live (running them would cost money); add them to --policies")


def run_references(pool_name: str, dataset: str, problems: Sequence[Problem], budgets: Sequence[str | float], seed: int,
                   policies: Sequence[str]) -> tuple[list[dict[str, Any]], list[str], str | None]:
    """Rows of the reference policies that `policies` lack, on `problems` as the bench plays them (episode
    seed `seed + index`, the problem pinned by index), with the names run and, when none could be, why."""
    pool = load_pool(pool_name, seed=seed)
    try:
        references, note = reference_policies(policies, pool, pool_name)
        base = {"pool": pool_name, "dataset": dataset, "seed": seed}
        rows = []
        for policy in references:
            play = partial(run_episode, text_env(pool, problems), make_router(policy, seed=seed))
            rows += [bench_row(base, policy, budget, seed, index, play)
                     for budget in budgets for index in range(len(problems))]
    finally:
        pool.close()
    return rows, references, note

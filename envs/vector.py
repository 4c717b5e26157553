"""A vector env of `CORL-Math-v0` whose batched step makes all its expert calls concurrently.

Sub-envs share one expert pool. A step parses every action, sends all the calls of the batch to the pool
at once (`Pool.acall_many`, one event loop), then finishes each sub-env's step. Autoreset follows
Gymnasium's default (`NEXT_STEP`): the step after an episode ends resets that sub-env and returns its
first observation with reward 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from corl_gym.envs.math_env import CORLMathEnv
from corl_gym.experts import ExpertReply, Pool, load_pool
from corl_gym.protocol import CallAction


class CORLMathVectorEnv(VectorEnv):
    """`num_envs` copies of `CORLMathEnv` (same keyword arguments) stepped as one batch.

    Observations and actions are tuples (one `str` or id array per sub-env); rewards, terminations and
    truncations are arrays; `info` is Gymnasium's dict of arrays with `_key` masks.
    """

    metadata = {"render_modes": ["ansi"], "autoreset_mode": AutoresetMode.NEXT_STEP}

    def __init__(self, num_envs: int, pool: str | Pool = "sim-paper", expert_seed: int = 0, **env_kwargs: Any):
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}")
        self._owns_pool = not isinstance(pool, Pool)
        self.pool = load_pool(pool, seed=expert_seed) if self._owns_pool else pool
        first = CORLMathEnv(pool=self.pool, **env_kwargs)
        # The problem list is loaded once and shared: sub-envs differ only in their random streams.
        env_kwargs = {**env_kwargs, "problems": first.problems}
        self.envs = [first] + [CORLMathEnv(pool=self.pool, **env_kwargs) for _ in range(num_envs - 1)]
        self.num_envs = num_envs
        self.single_observation_space = first.observation_space
        self.single_action_space = first.action_space
        self.observation_space = batch_space(first.observation_space, num_envs)
        self.action_space = batch_space(first.action_space, num_envs)
        self.render_mode = first.render_mode
        self._needs_reset = np.zeros(num_envs, dtype=bool)

    @property
    def expert_names(self) -> list[str]:
        """The pool's experts, the same for every sub-env."""
        return list(self.envs[0].expert_names)

    @property
    def last_replies(self) -> tuple[ExpertReply | None, ...]:
        """Each sub-env's `last_reply`: the checked reply to its latest step's call, or None."""
        return tuple(env.last_reply for env in self.envs)

    def reset(self, *, seed: int | Sequence[int] | None = None,
              options: dict[str, Any] | Sequence[dict[str, Any] | None] | None = None):
        """Reset every sub-env. `seed`: an int (sub-env i gets `seed + i`) or one per sub-env. `options`:
        one dict for every sub-env, or a sequence of one per sub-env (e.g. each its own `problem_id` and
        `budget`, for evaluation)."""
        seeds = _seeds(seed, self.num_envs)
        per_env = _per_env_options(options, self.num_envs)
        observations, infos = [], {}
        for i, (env, env_seed, env_options) in enumerate(zip(self.envs, seeds, per_env)):
            obs, info = env.reset(seed=env_seed, options=env_options)
            observations.append(obs)
            infos = self._add_info(infos, info, i)
        self._needs_reset[:] = False
        return tuple(observations), infos

    def step(self, actions: Sequence[Any]):
        if len(actions) != self.num_envs:
            raise ValueError(f"expected {self.num_envs} actions, got {len(actions)}")
        turns = {
            i: env.begin_step(action)
            for i, (env, action) in enumerate(zip(self.envs, actions))
            if not self._needs_reset[i]
        }
        calls = [(i, t.action) for i, t in turns.items() if isinstance(t.action, CallAction)]
        replies = self._call_all([(a.expert, a.query, self.envs[i].problem) for i, a in calls])
        reply_of = {i: reply for (i, _), reply in zip(calls, replies)}

        observations, infos = [], {}
        rewards = np.zeros(self.num_envs, dtype=np.float64)
        terminations = np.zeros(self.num_envs, dtype=bool)
        truncations = np.zeros(self.num_envs, dtype=bool)
        for i, env in enumerate(self.envs):
            if self._needs_reset[i]:
                obs, info = env.reset()
            else:
                obs, rewards[i], terminations[i], truncations[i], info = env.finish_step(turns[i], reply_of.get(i))
            observations.append(obs)
            infos = self._add_info(infos, info, i)
        self._needs_reset = terminations | truncations
        return tuple(observations), rewards, terminations, truncations, infos

    def _call_all(self, calls: list[tuple[str, str, Any]]) -> list[ExpertReply]:
        if not calls:
            return []
        return self.pool.call_many(calls)

    def render(self) -> tuple[str | None, ...]:
        return tuple(env.render() for env in self.envs)

    def close_extras(self, **kwargs: Any) -> None:
        for env in self.envs:
            env.close()
        if self._owns_pool:
            self.pool.close()


def _seeds(seed: int | Sequence[int] | None, n: int) -> list[int | None]:
    if seed is None:
        return [None] * n
    if isinstance(seed, int):
        return [seed + i for i in range(n)]
    if len(seed) != n:
        raise ValueError(f"expected {n} seeds, got {len(seed)}")
    return list(seed)


def _per_env_options(options: dict[str, Any] | Sequence[dict[str, Any] | None] | None,
                     n: int) -> list[dict[str, Any] | None]:
    if options is None or isinstance(options, dict):
        return [options] * n
    if len(options) != n:
        raise ValueError(f"expected one reset options dict per sub-env ({n}), got {len(options)}")
    return list(options)

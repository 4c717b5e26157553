"""Gymnasium registration of the corl-gym environments (entry points are strings: nothing heavy loads
until `gym.make`)."""

from __future__ import annotations

import gymnasium as gym

ENV_IDS: tuple[str, ...] = ("CORL-Math-v0", "CORL-Routing-v0", "CORL-Routing-v1")


def register_envs() -> None:
    if "CORL-Math-v0" not in gym.registry:
        gym.register(
            id="CORL-Math-v0",
            entry_point="corl_gym.envs.math_env:CORLMathEnv",
            vector_entry_point="corl_gym.envs.vector:CORLMathVectorEnv",
            disable_env_checker=False,
        )
    if "CORL-Routing-v0" not in gym.registry:
        gym.register(id="CORL-Routing-v0", entry_point="corl_gym.envs.routing_env:CORLRoutingEnv")
    if "CORL-Routing-v1" not in gym.registry:
        gym.register(id="CORL-Routing-v1", entry_point="corl_gym.envs.routing_env_v1:CORLRoutingEnvV1")

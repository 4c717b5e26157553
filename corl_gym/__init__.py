"""corl-gym: Gymnasium environments and agents for cost-aware LLM routing (CoRL).

Importing the package registers `CORL-Math-v0` (the multi-turn text env), `CORL-Routing-v0` (its
discrete routing view) and `CORL-Routing-v1` (the routing view with answer aggregation). It imports no heavy library
(torch, transformers, vllm, trl, stable-baselines3): those load lazily where they are used.
"""

from corl_gym.registration import register_envs

__version__ = "0.1.0"

register_envs()

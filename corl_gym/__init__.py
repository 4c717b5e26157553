"""corl-gym: Gymnasium environments and agents for cost-aware LLM routing (CoRL).

Importing the package registers `CORL-Math-v0` and `CORL-Routing-v0`. It imports no heavy library
(torch, transformers, vllm, trl, stable-baselines3): those load lazily where they are used.
"""

__version__ = "0.1.0"

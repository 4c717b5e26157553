"""Experts: the call protocol, backends (sim, replay, openai, hf, vllm) and YAML expert pools.

Backends load lazily (see `registry.BACKENDS`), so importing this package never imports openai's
client, torch, transformers or vllm.
"""

from corl_gym.experts.base import Expert, ExpertReply, ExpertSpec
from corl_gym.experts.cache import CacheConfig
from corl_gym.experts.ledger import Ledger
from corl_gym.experts.pool import POOL_NAMES, Pool, load_pool

__all__ = ["CacheConfig", "Expert", "ExpertReply", "ExpertSpec", "Ledger", "POOL_NAMES", "Pool", "load_pool"]

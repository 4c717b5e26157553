"""What generates PPO's rollouts (`--rollout-engine`), always with the actor's current weights:

- `hf` in one process: `HFGenerator` over the actor itself;
- `hf` under torchrun: `HFGenerator` over a full, unsharded copy of the actor, refreshed from its FSDP
  shards before each rollout (as veRL syncs weights into its rollout engine), so generation runs no
  collectives;
- `vllm`: a colocated vLLM engine (`VLLMGenerator`) loaded from the start model, into which the actor's
  weights are pushed before each rollout; one process (under torchrun it is refused).

`auto` is `vllm` where vLLM is installed and the run is one process on a GPU, else `hf`.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from typing import Any

from corl_gym.agents.llm import Generator, HFGenerator, VLLMGenerator
from corl_gym.agents.ppo.distributed import full_state_dict
from corl_gym.extras import require

# vLLM takes this share of the GPU's memory (its default, 0.9, would leave none for training); TRL's
# colocated default
VLLM_MEMORY_SHARE = 0.3


def engine_kind(name: str, device: str, world_size: int) -> str:
    """`hf` or `vllm` for `--rollout-engine NAME`; a one-line error when vllm is asked for and cannot run."""
    if name == "auto":
        usable = device.startswith("cuda") and world_size == 1 and importlib.util.find_spec("vllm") is not None
        return "vllm" if usable else "hf"
    if name == "vllm":
        require("vllm", "--rollout-engine vllm")
        if world_size > 1:
            raise ValueError("--rollout-engine vllm runs in one process (a colocated engine); use hf under torchrun")
    elif name != "hf":
        raise ValueError(f"unknown rollout engine {name!r}: use hf, vllm or auto")
    return name


class RolloutEngine:
    """A generator and how to bring it the actor's current weights (`sync`, before each rollout)."""

    def __init__(self, generator: Generator, push_weights: Callable[[], None] | None = None):
        self.generator, self._push_weights = generator, push_weights

    def sync(self) -> None:
        if self._push_weights is not None:
            self._push_weights()


def rollout_engine(kind: str, actor: Any, tokenizer: Any, *, full_copy: Any = None, model_path: str = "",
                   dtype: Any = None, seed: int = 0) -> RolloutEngine:
    """The engine of `kind` (`engine_kind`) for `actor`; `full_copy` is the unsharded copy a sharded actor
    generates with, `model_path` and `dtype` what a vLLM engine loads."""
    if kind == "vllm":
        generator = VLLMGenerator(model_path, seed=seed, dtype=str(dtype).removeprefix("torch."),
                                  gpu_memory_utilization=VLLM_MEMORY_SHARE)
        return RolloutEngine(generator, lambda: generator.load_weights(actor.state_dict().items()))
    if full_copy is not None:
        def refresh() -> None:
            full_copy.load_state_dict(full_state_dict(actor))

        return RolloutEngine(HFGenerator(full_copy, tokenizer), refresh)
    return RolloutEngine(HFGenerator(actor, tokenizer))

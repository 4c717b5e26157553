"""PPO under torchrun: the process group, FSDP2 sharding, and the collectives that gather a sharded
model's weights and optimiser state. Outside torchrun every helper is the one-process identity."""

from __future__ import annotations

import os
from typing import Any

import torch
from torch import nn

from corl_gym.agents.ppo.models import Critic


def world() -> tuple[int, int]:
    """(rank, world size); (0, 1) outside torchrun."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def init_distributed(device: str) -> tuple[int, int]:
    """Join the torchrun process group (nccl on GPU, gloo on CPU) when launched by torchrun."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not torch.distributed.is_initialized():
        backend = "nccl" if device.startswith("cuda") else "gloo"
        torch.distributed.init_process_group(backend)
        if device.startswith("cuda"):
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    return world()


def shard(model: nn.Module, mixed_precision: bool = False) -> nn.Module:
    """FSDP2: each transformer layer is its own unit (all-gathered just in time), then the root (the
    embeddings, the final norm and the heads)."""
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    precision = dict(param_dtype=torch.bfloat16, reduce_dtype=torch.float32) if mixed_precision else {}
    policy = MixedPrecisionPolicy(**precision)
    body = model.body if isinstance(model, Critic) else model.model
    for layer in body.layers:
        fully_shard(layer, mp_policy=policy)
    fully_shard(model, mp_policy=policy)
    return model


def all_reduce_sum(x: torch.Tensor) -> torch.Tensor:
    if world()[1] > 1:
        x = x.clone()
        torch.distributed.all_reduce(x)
    return x


def full_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The whole model's weights on CPU, on every rank: each shard is all-gathered (a collective, so
    every rank must call this)."""
    state = {}
    for key, value in model.state_dict().items():
        value = value.full_tensor() if hasattr(value, "full_tensor") else value
        state[key] = value.detach().cpu()
    return state


def optimizer_state(model: nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    if world()[1] == 1:
        return optimizer.state_dict()
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

    return get_optimizer_state_dict(model, optimizer, options=StateDictOptions(full_state_dict=True, cpu_offload=True))


def load_optimizer_state(model: nn.Module, optimizer: torch.optim.Optimizer, state: dict[str, Any]) -> None:
    if world()[1] == 1:
        optimizer.load_state_dict(state)
        return
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

    set_optimizer_state_dict(model, optimizer, state, options=StateDictOptions(full_state_dict=True))

"""The three models of PPO (actor, critic, frozen reference), their forward passes in the shifted token
layout of `core`, FSDP2 sharding under torchrun, and checkpoint state.

Value model: a separate critic (the actor's transformer body, copied at the start, with a fresh scalar
head), not a value head on the actor. Why: the value loss then never moves the policy's weights (with a
shared body the value regression perturbs the policy and its KL to the reference), the critic can take a
larger learning rate than the actor (1e-5 vs 1e-6 at 7B, as in Search-R1 and veRL), and each model is
sharded, saved and swapped on its own. The price is a second forward and backward pass per update.
"""

from __future__ import annotations

import copy
import os
from typing import Any

import torch
from torch import nn

from corl_gym.agents.ppo import core


class Critic(nn.Module):
    """A causal LM's transformer body and a linear head: one value per position."""

    def __init__(self, body: nn.Module, hidden_size: int):
        super().__init__()
        self.body = body
        self.value_head = nn.Linear(hidden_size, 1)
        nn.init.zeros_(self.value_head.weight)
        nn.init.zeros_(self.value_head.bias)

    @classmethod
    def from_actor(cls, actor: nn.Module) -> "Critic":
        critic = cls(copy.deepcopy(actor.model), actor.config.hidden_size)
        return critic.requires_grad_(True).train()

    def forward(self, ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.body(input_ids=ids, attention_mask=attention_mask).last_hidden_state
        return self.value_head(hidden).squeeze(-1).float()


def frozen_copy(model: nn.Module) -> nn.Module:
    ref = copy.deepcopy(model)
    ref.requires_grad_(False)
    return ref.eval()


def actor_forward(actor: nn.Module, batch: dict[str, torch.Tensor], with_entropy: bool = False,
                  entropy_grad: bool = True, **sampling: Any):
    """Log-probabilities (and entropies) of each next token, `[B, L-1]`, under the sampling distribution
    that `sampling` (`temperature`, `top_p`, `vocab_limit` of `core.sampling_log_softmax`) describes:
    the one the rollout drew its tokens from. With `entropy_grad=False` the entropy is only logged: no
    graph is kept for it (it costs a vocabulary-sized tensor per token)."""
    logits = actor(input_ids=batch["ids"], attention_mask=batch["attention_mask"], use_cache=False).logits
    logprobs = core.token_logprobs(logits, batch["ids"], **sampling)
    if not with_entropy:
        return logprobs, None
    with torch.set_grad_enabled(entropy_grad and torch.is_grad_enabled()):
        entropy = core.token_entropy(logits, **sampling)
    return logprobs, entropy


def critic_forward(critic: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Values of each context before the next token, `[B, L-1]`."""
    return critic(batch["ids"], batch["attention_mask"])[:, :-1]


# ------------------------------------------------------------------------------------- distributed
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

    policy = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32) if mixed_precision else MixedPrecisionPolicy()
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

"""The three models of PPO (actor, critic, frozen reference) and the critic's forward pass in the shifted
token layout of `core` (the actor's is `agents.logprobs.model_logprobs`).

Value model: a separate critic (the actor's transformer body, copied at the start, with a fresh scalar
head), not a value head on the actor. Why: the value loss then never moves the policy's weights (with a
shared body the value regression perturbs the policy and its KL to the reference), the critic can take a
larger learning rate than the actor (1e-5 vs 1e-6 at 7B, as in Search-R1 and veRL), and each model is
sharded, saved and swapped on its own. The price is a second forward and backward pass per update.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


class Critic(nn.Module):
    """A causal LM's transformer body and a linear head: one value per position."""

    def __init__(self, body: nn.Module, hidden_size: int):
        super().__init__()
        self.body = body
        self.value_head = nn.Linear(hidden_size, 1)
        nn.init.zeros_(self.value_head.weight)
        nn.init.zeros_(self.value_head.bias)

    @classmethod
    def from_actor(cls, actor: nn.Module) -> Critic:
        critic = cls(copy.deepcopy(actor.model), actor.config.hidden_size)
        return critic.requires_grad_(True).train()

    def forward(self, ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.body(input_ids=ids, attention_mask=attention_mask).last_hidden_state
        return self.value_head(hidden).squeeze(-1).float()


def frozen_copy(model: nn.Module) -> nn.Module:
    ref = copy.deepcopy(model)
    ref.requires_grad_(False)
    return ref.eval()


def critic_forward(critic: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Values of each context before the next token, `[B, L-1]`."""
    return critic(batch["ids"], batch["attention_mask"])[:, :-1]

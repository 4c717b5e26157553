"""The maths of token-level PPO, as plain functions of tensors (no models, no envs), so each is tested
against a hand computation.

Layout. A batch holds `B` trajectories right-padded to length `L`: `ids[B, L]`, and `action_mask[B, L]`,
1 exactly on the controller's own tokens (0 on the prompt, on every block the env appended, on padding).
Every per-token quantity here is in the shifted layout of length `L - 1` (`agents.logprobs`):
`logprobs[:, t] = log p(ids[:, t+1] | ids[:, :t+1])`, `values[:, t]` = the critic's value of the
context `ids[:, :t+1]`, and `mask = action_mask[:, 1:]`.

Names follow TRL and veRL: a mask is named for what 1 means, and every masked mean divides by
`mask.sum().clamp(min=1)`, so a batch without a controller token gives 0, never NaN. `denom` overrides
that count: under data parallelism each rank passes the global token count / world size, so the mean of
the ranks' losses is the token mean of the whole batch (what one process would compute).
"""

from __future__ import annotations

import torch

from corl_gym.agents.logprobs import masked_sum_mean


def masked_whiten(x: torch.Tensor, mask: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Zero mean, unit variance over masked positions; 0 elsewhere."""
    mean = masked_sum_mean(x, mask)
    var = masked_sum_mean((x - mean) ** 2, mask)
    return (x - mean) * torch.rsqrt(var + eps) * mask


def last_token_index(mask: torch.Tensor) -> torch.Tensor:
    """Index of the last 1 in each row of `mask` (0 for a row of zeros)."""
    positions = torch.arange(mask.shape[1], device=mask.device).expand_as(mask)
    return torch.where(mask.bool(), positions, torch.zeros_like(positions)).max(dim=1).values


def kl_rewards(scores: torch.Tensor, logprobs: torch.Tensor, ref_logprobs: torch.Tensor, mask: torch.Tensor,
               kl_coef: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token rewards: `-kl_coef * (logp - ref_logp)` on every controller token, plus the episode's
    score on its last controller token. Returns (rewards, kl), both `[B, L-1]` and 0 off the mask."""
    kl = (logprobs - ref_logprobs) * mask
    rewards = -kl_coef * kl
    rows = torch.arange(mask.shape[0], device=mask.device)
    rewards[rows, last_token_index(mask)] += scores * (mask.sum(1) > 0)
    return rewards, kl


def gae(rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float = 1.0,
        lam: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation over controller tokens only.

    The controller's tokens are the time steps; env tokens in between are skipped (they are not
    decisions), so the next value of a controller token is the value at the next controller token, and
    0 after the last one (the episode ends there). Returns (advantages, returns), 0 off the mask."""
    batch, length = rewards.shape
    advantages = torch.zeros_like(rewards)
    next_value = torch.zeros(batch, dtype=rewards.dtype, device=rewards.device)
    next_adv = torch.zeros_like(next_value)
    for t in reversed(range(length)):
        on = mask[:, t].bool()
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        adv = delta + gamma * lam * next_adv
        advantages[:, t] = torch.where(on, adv, torch.zeros_like(adv))
        next_adv = torch.where(on, adv, next_adv)
        next_value = torch.where(on, values[:, t], next_value)
    returns = (advantages + values) * mask
    return advantages, returns


def policy_loss(logprobs: torch.Tensor, old_logprobs: torch.Tensor, advantages: torch.Tensor,
                mask: torch.Tensor, clip: float, denom=None, *, dual_clip: float = 0.0,
                max_log_ratio: float = 20.0) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """PPO's clipped surrogate, averaged over controller tokens. Returns (loss, stats).

    The log-ratio is clamped to `[-max_log_ratio, max_log_ratio]` before `exp`: a token whose
    probability collapsed or exploded since the rollout would otherwise give inf (and 0 * inf = NaN on
    a zero advantage). `dual_clip` > 1 (Ye et al. 2020, veRL's `clip_ratio_c`) also bounds the loss of a
    negative-advantage token by `-advantage * dual_clip`, so one huge ratio cannot dominate the batch;
    0 turns it off."""
    if dual_clip and dual_clip <= 1.0:
        raise ValueError(f"dual_clip must be > 1 (or 0: off), got {dual_clip}")
    log_ratio = torch.clamp(logprobs - old_logprobs, -max_log_ratio, max_log_ratio)
    ratio = torch.exp(log_ratio)
    unclipped = -advantages * ratio
    clipped = -advantages * torch.clamp(ratio, 1.0 - clip, 1.0 + clip)
    losses = torch.maximum(unclipped, clipped)
    if dual_clip > 1.0:
        losses = torch.where(advantages < 0, torch.minimum(losses, -advantages * dual_clip), losses)
    loss = masked_sum_mean(losses, mask, denom)
    with torch.no_grad():
        stats = {
            "clipfrac": masked_sum_mean((clipped > unclipped).float(), mask),
            "approx_kl": masked_sum_mean((ratio - 1) - log_ratio, mask),  # k3, non-negative
        }
    return loss, stats


def value_loss(values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor,
               clip: float, denom=None) -> torch.Tensor:
    """Clipped value loss `0.5 * max((v - R)^2, (v_clipped - R)^2)`, averaged over controller tokens."""
    clipped = old_values + torch.clamp(values - old_values, -clip, clip)
    loss = torch.maximum((values - returns) ** 2, (clipped - returns) ** 2)
    return 0.5 * masked_sum_mean(loss, mask, denom)

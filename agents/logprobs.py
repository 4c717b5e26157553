"""Log-probabilities of a causal LM's tokens under the distribution a sampler draws from: the one
definition the generators sample with (`agents.llm`) and SFT, copy pretraining and PPO score with.

Layout. A batch holds `B` sequences right-padded to length `L`: `ids[B, L]` and `attention_mask[B, L]`.
A causal LM's logits at position t predict token t+1, so per-token results are in the shifted layout of
length `L - 1`: `logprobs[:, t] = log p(ids[:, t+1] | ids[:, :t+1])`. Every masked mean divides by
`mask.sum().clamp(min=1)`, so a batch without a masked-in token gives 0, never NaN.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

# A token outside the nucleus has probability 0 under the sampling distribution; its log-probability is
# kept finite (so masked sums and KL stay numbers) and far below any sampled token's.
LOGPROB_FLOOR = -1e4


def masked_sum_mean(x: torch.Tensor, mask: torch.Tensor, denom: torch.Tensor | float | None = None) -> torch.Tensor:
    """Mean of `x` over positions where `mask` is 1. `denom` replaces the count: under data parallelism
    each rank passes the global count / world size, so the mean of the ranks' results is the global mean."""
    total = (x * mask).sum()
    if denom is None:
        denom = mask.sum().clamp(min=1)
    return total / denom


def sampling_log_softmax(logits: torch.Tensor, temperature: float = 1.0, top_p: float = 1.0,
                         vocab_limit: int | None = None) -> torch.Tensor:
    """Log-probabilities of the distribution a sampler draws from: ids from `vocab_limit` on (padding
    rows of the embedding, which no tokenizer id names) removed, `logits / temperature`, then the
    nucleus (the most likely tokens, in order, while the mass before each is at most `top_p`),
    renormalised; -inf outside it. `temperature <= 0` (greedy) scores the model's own distribution."""
    logits = logits.float()
    if vocab_limit is not None and logits.shape[-1] > vocab_limit:
        logits = torch.cat([logits[..., :vocab_limit], torch.full_like(logits[..., vocab_limit:], float("-inf"))], -1)
    logp = torch.log_softmax(logits / (temperature if temperature > 0 else 1.0), dim=-1)
    if top_p >= 1.0:
        return logp
    sorted_logp, order = logp.sort(-1, descending=True)
    mass_before = sorted_logp.exp().cumsum(-1) - sorted_logp.exp()
    sorted_logp = sorted_logp.masked_fill(mass_before > top_p, float("-inf"))
    return torch.log_softmax(torch.full_like(logp, float("-inf")).scatter(-1, order, sorted_logp), dim=-1)


def token_logprobs(logits: torch.Tensor, ids: torch.Tensor, temperature: float = 1.0, top_p: float = 1.0,
                   vocab_limit: int | None = None) -> torch.Tensor:
    """`[B, L, V]` logits and `[B, L]` ids -> `[B, L-1]` log-probabilities of ids[:, 1:] under the
    sampling distribution (`sampling_log_softmax`), floored at `LOGPROB_FLOOR`."""
    logp = sampling_log_softmax(logits[:, :-1], temperature, top_p, vocab_limit)
    return logp.gather(-1, ids[:, 1:, None]).squeeze(-1).clamp(min=LOGPROB_FLOOR)


def token_entropy(logits: torch.Tensor, temperature: float = 1.0, top_p: float = 1.0,
                  vocab_limit: int | None = None) -> torch.Tensor:
    """`[B, L, V]` -> `[B, L-1]` entropy of each next-token sampling distribution."""
    logp = sampling_log_softmax(logits[:, :-1], temperature, top_p, vocab_limit)
    return -torch.where(logp.isfinite(), logp.exp() * logp, torch.zeros_like(logp)).sum(-1)


def model_logprobs(model: nn.Module, batch: dict[str, torch.Tensor], with_entropy: bool = False,
                   entropy_grad: bool = True, **sampling: Any):
    """Log-probabilities (and entropies) of each next token of `batch["ids"]` under `model`, `[B, L-1]`,
    under the sampling distribution that `sampling` (`temperature`, `top_p`, `vocab_limit` of
    `sampling_log_softmax`) describes: the one a rollout drew its tokens from. With
    `entropy_grad=False` the entropy is only logged: no graph is kept for it (it costs a
    vocabulary-sized tensor per token)."""
    logits = model(input_ids=batch["ids"], attention_mask=batch["attention_mask"], use_cache=False).logits
    logprobs = token_logprobs(logits, batch["ids"], **sampling)
    if not with_entropy:
        return logprobs, None
    with torch.set_grad_enabled(entropy_grad and torch.is_grad_enabled()):
        entropy = token_entropy(logits, **sampling)
    return logprobs, entropy

"""Copy pretraining: the skill a small controller trained from scratch needs before SFT can teach it to
quote an expert.

After a call, the controller's answer turn must repeat the number the expert stated:
`... $\\boxed{553}$.</response> ... <answer>\\boxed{` -> `553`. A pretrained LLM does this out of the box
with induction heads (attend to the token after an earlier occurrence of the current context, and copy
it). A model trained from scratch on demonstrations alone does not learn it: each trajectory holds one
copied token, too sparse a signal to form the two-layer circuit, so the clone learns the answers'
marginal distribution instead (the same number whatever the expert said).

So the tiny preset first trains that circuit on random token sequences in which segments repeat at
random offsets and with random lengths (`repeat_batch`): the only predictable tokens are the
continuations of a repeat, and since nothing about their position is fixed, only content-based copying
predicts them. Two stages (`CopyStage`): short sequences first, where the circuit forms cheaply after a
plateau; then sequences as long as the env's contexts, because an attention head sharp enough to find
its match among 64 tokens is not sharp enough among 256 (without that stage the skill does not carry
over to the real context). SFT then keeps a few such sequences in every batch so the skill survives
(`corl_gym.agents.sft`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from corl_gym.agents.logprobs import masked_sum_mean, model_logprobs

FIRST_ID = 3  # ids below are the tiny tokenizer's special tokens (agents.tiny.SPECIAL)


@dataclass(frozen=True)
class CopyStage:
    """`steps` optimiser steps on batches of `batch_size` sequences of `length` random ids, each with
    `segments` repeats of `min_len` to `max_len` ids."""

    steps: int
    batch_size: int
    length: int
    segments: int = 1
    min_len: int = 6
    max_len: int = 30


# the circuit forms on short sequences (one long repeat: a dense signal) ...
SHORT = CopyStage(steps=0, batch_size=32, length=64, segments=1, min_len=6, max_len=30)
# ... and is sharpened on sequences as long as the compact env's contexts (several short repeats)
LONG = CopyStage(steps=0, batch_size=16, length=256, segments=4, min_len=4, max_len=24)


def repeat_batch(rng: np.random.Generator, stage: CopyStage, vocab_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """`[B, L]` random ids in `[FIRST_ID, vocab_size)` with `stage.segments` segments each copied to a
    random later position, and the `[B, L]` target mask: 1 where a token is predictable by copying, i.e.
    where the token after the latest earlier occurrence of the previous token is this token."""
    ids = rng.integers(FIRST_ID, vocab_size, (stage.batch_size, stage.length))
    targets = np.zeros(ids.shape, dtype=np.float32)
    for row in ids:
        for _ in range(stage.segments):
            size = int(rng.integers(stage.min_len, stage.max_len + 1))
            source = int(rng.integers(0, stage.length - 2 * size + 1))
            row[int(rng.integers(source + size, stage.length - size + 1)) :][:size] = row[source : source + size]
    for row, mask in zip(ids, targets):
        last: dict[int, int] = {}
        for t in range(1, len(row)):
            before = last.get(row[t - 1])
            mask[t] = before is not None and row[before + 1] == row[t]
            last[row[t - 1]] = t - 1
    return torch.as_tensor(ids), torch.as_tensor(targets)


def copy_loss(model: Any, ids: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the predictable tokens only (a mean over them)."""
    ids, targets = ids.to(next(model.parameters()).device), targets.to(next(model.parameters()).device)
    logprobs, _ = model_logprobs(model, {"ids": ids, "attention_mask": torch.ones_like(ids)})
    return -masked_sum_mean(logprobs, targets[:, 1:])


def copy_accuracy(model: Any, stage: CopyStage, vocab_size: int, seed: int = 12345) -> float:
    """Share of a fresh batch's predictable tokens the model predicts exactly (greedy)."""
    ids, targets = repeat_batch(np.random.default_rng(seed), stage, vocab_size)
    with torch.no_grad():
        predicted = model(input_ids=ids.to(next(model.parameters()).device)).logits[:, :-1].argmax(-1).cpu()
    hits = (predicted == ids[:, 1:]).float() * targets[:, 1:]
    return float(hits.sum() / targets[:, 1:].sum().clamp(min=1))


def pretrain_copy(model: Any, vocab_size: int, stages: Sequence[CopyStage], lr: float, seed: int,
                  progress: bool = True, log: Any = None) -> list[float]:
    """Train `model` on the stages in order (AdamW, warmup then constant `lr`); returns every step's loss.
    `log(step, metrics)` receives the loss and, at the end of each stage, the copy accuracy."""
    rng = np.random.default_rng(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01, betas=(0.9, 0.95))
    bar = _bar(progress, sum(s.steps for s in stages))
    losses: list[float] = []
    model.train()
    for stage in stages:
        for step in range(stage.steps):
            for group in optimizer.param_groups:
                group["lr"] = lr * min((step + 1) / 30, 1.0)
            losses.append(optimizer_step(model, optimizer, copy_loss(model, *repeat_batch(rng, stage, vocab_size))))
            if log is not None:
                log(len(losses), {"copy/loss": losses[-1]})
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{losses[-1]:.3f}", length=stage.length)
        model.eval()
        accuracy = copy_accuracy(model, stage, vocab_size)
        model.train()
        if log is not None:
            log(len(losses), {"copy/accuracy": accuracy, "copy/length": stage.length})
    if bar is not None:
        bar.close()
    model.eval()
    return losses


def optimizer_step(model: Any, optimizer: Any, loss: torch.Tensor, max_grad_norm: float = 1.0) -> float:
    """One clipped optimiser step on `loss`; returns its value."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
    optimizer.step()
    return loss.item()


def _bar(progress: bool, total: int):
    if not progress:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="copy pretraining", unit="step", dynamic_ncols=True)

"""Tiny tokenizers for the tests: nothing is downloaded.

`make_tokenizer` trains the project's tiny-controller tokenizer (`corl_gym.agents.tiny`: byte-level BPE
with Qwen2's split pattern, ChatML special tokens and template, saved and reloaded so ids are stable) on
a small corpus of the grammar's tags and arithmetic, with Qwen2's own one-digit split."""

from __future__ import annotations

from pathlib import Path


def corpus() -> list[str]:
    words = [
        "<think>", "</think>", '<call expert="o3">', "</call>", "<answer>", "</answer>", "\\boxed{",
        '<response expert="gpt-4.1-nano">', "</response>", "<budget spent=", "What is the value of",
        "Solve for x", "the answer is", "Problem", "budget", "expert", "threshold", "remaining",
    ]
    lines = [f"{w} {i} + {i * 7} = {i * 8}. {w}" for i in range(200)
             for w in words[i % len(words) : i % len(words) + 3]]
    return lines + [str(i) for i in range(1000)]


def make_tokenizer(folder: Path, vocab_size: int = 1200):
    """A PreTrainedTokenizerFast trained here, saved to `folder` and reloaded from it."""
    from corl_gym.agents.tiny import QWEN2_SPLIT, train_tokenizer

    return train_tokenizer(corpus(), folder, vocab_size=vocab_size, split=QWEN2_SPLIT)

"""Tiny tokenizers and models built inside the tests: nothing is downloaded.

The tokenizer is a byte-level BPE with Qwen2's pre-tokenizer split pattern, trained on a small corpus,
with ChatML special tokens and a ChatML chat template, saved and reloaded so ids are stable."""

from __future__ import annotations

from pathlib import Path

QWEN2_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]


def corpus() -> list[str]:
    words = [
        "<think>", "</think>", '<call expert="o3">', "</call>", "<answer>", "</answer>", "\\boxed{",
        '<response expert="gpt-4.1-nano">', "</response>", "<budget spent=", "What is the value of",
        "Solve for x", "the answer is", "Problem", "budget", "expert", "threshold", "remaining",
    ]
    lines = [f"{w} {i} + {i * 7} = {i * 8}. {w}" for i in range(200) for w in words[i % len(words) : i % len(words) + 3]]
    return lines + [str(i) for i in range(1000)]


def make_tokenizer(folder: Path, vocab_size: int = 1200):
    """A PreTrainedTokenizerFast trained here, saved to `folder` and reloaded from it."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(QWEN2_SPLIT), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=SPECIAL, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tokenizer.train_from_iterator(corpus(), trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, eos_token="<|im_end|>", pad_token="<|endoftext|>", chat_template=CHATML
    )
    fast.save_pretrained(folder)
    return PreTrainedTokenizerFast.from_pretrained(folder)

"""A tiny controller for laptops and tests: a byte-level BPE tokenizer trained here and a few-million-parameter
Qwen2 built from a config with random weights. Nothing is downloaded.

The tokenizer uses Qwen2's pre-tokenizer split pattern (digits one by one, as in Qwen2), ChatML special
tokens and a ChatML chat template, so the token-mode env renders the same structure a Qwen2.5-Instruct
controller sees. It is trained on the env's own texts (system prompts of every budget, problems, expert
replies, actions), so contexts are short and the tiny model's budget goes to learning the task.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

QWEN2_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
# Qwen2's pattern with digits grouped by up to three (as in Llama 3 and cl100k): with every number below
# 1000 in the vocabulary, copying an expert's integer answer is one or two tokens, not one per digit.
DIGITS3_SPLIT = QWEN2_SPLIT.replace(r"|\p{N}|", r"|\p{N}{1,3}|")
CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]

# name -> Qwen2Config overrides; `tiny-cpu` is ~1.4M parameters with a 3k vocabulary
SIZES: dict[str, dict[str, int]] = {
    "micro": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2),
    "tiny-cpu": dict(hidden_size=128, intermediate_size=512, num_hidden_layers=4, num_attention_heads=4,
                     num_key_value_heads=2),
}


def train_tokenizer(texts: Iterable[str], folder: str | Path, vocab_size: int = 3072, split: str = DIGITS3_SPLIT):
    """A `PreTrainedTokenizerFast` trained on `texts`, saved to `folder` and reloaded from it (ids stable)."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(split), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=SPECIAL, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tokenizer.train_from_iterator(list(texts), trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, eos_token="<|im_end|>", pad_token="<|endoftext|>", chat_template=CHATML
    )
    fast.save_pretrained(str(folder))
    return PreTrainedTokenizerFast.from_pretrained(str(folder))


def load_tokenizer(folder: str | Path) -> Any:
    """The tokenizer saved in `folder` (or a hub id), giving the ids it was trained with.

    `AutoTokenizer` rebuilds the tokenizer of any Qwen2 model folder with Qwen2's own split pattern, whatever
    its `tokenizer.json` says. That keeps real Qwen2 checkpoints intact but turns the tiny controller's
    three-digit number tokens into digits: a model trained on `553` would then be shown `5 5 3`, and its
    learned copy of an expert's answer fails. So when the file's own tokenizer splits a probe text
    differently, the file's tokenizer is loaded as it is."""
    from tokenizers import Tokenizer
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    saved = Path(folder) / "tokenizer.json"
    probe = "<answer>\\boxed{553}</answer> costs $0.0125 in 2024"
    if saved.is_file():
        ids = Tokenizer.from_file(str(saved)).encode(probe, add_special_tokens=False).ids
        if tokenizer(probe, add_special_tokens=False)["input_ids"] != ids:
            tokenizer = PreTrainedTokenizerFast.from_pretrained(str(folder))
    return tokenizer


def env_corpus(pool: Any, problems: list, n_replies: int = 300, call_query: str = "") -> list[str]:
    """The texts a controller meets in `CORL-Math-v0` with `pool`, in both prompt styles: prompts,
    problems, replies, actions (calls with `call_query`, or the problem when it is empty)."""
    from corl_gym.protocol import (
        InvalidAction,
        RosterEntry,
        compact_opening,
        compact_response,
        compact_system_prompt,
        corrective_message,
        format_response,
        system_prompt,
    )

    roster = [RosterEntry(n, e.spec.description, e.spec.price_in, e.spec.price_out) for n, e in pool.experts.items()]
    texts = [make(roster, mode, t) for mode, t in pool.budgets.items()
             for make in (system_prompt, compact_system_prompt)]
    texts += [compact_opening("", mode, t) for mode, t in pool.budgets.items()]
    texts *= 20
    texts += [" ".join(str(n) for n in range(1000))] * 3  # every number below 1000 becomes one token
    texts += [corrective_message(InvalidAction(r), pool.expert_names()) for r in ("no_action", "unknown_expert")] * 10
    for i, problem in enumerate(problems):
        texts.append(problem.problem)
        texts.append(f"<answer>\\boxed{{{problem.answer}}}</answer>")
        if i < n_replies:
            name = pool.expert_names()[i % len(pool.experts)]
            reply = pool.call(name, call_query or problem.problem, problem)
            texts.append(f'<call expert="{name}">{call_query or problem.problem}</call>')
            block = (format_response, compact_response)[i % 2]
            texts.append(block(name, reply.text, reply.cost_usd, 0.01))
    return texts


def tiny_qwen2(vocab_size: int, size: str = "tiny-cpu", seed: int = 0, **overrides: Any):
    """A randomly initialised `Qwen2ForCausalLM` of the named size (see `SIZES`), tied embeddings."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    config = Qwen2Config(
        vocab_size=vocab_size, max_position_embeddings=4096, tie_word_embeddings=True, rms_norm_eps=1e-6,
        **{**SIZES[size], **overrides},
    )
    config._attn_implementation = "sdpa"
    torch.manual_seed(seed)
    return Qwen2ForCausalLM(config)

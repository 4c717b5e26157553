"""Backend `hf` with a tiny Qwen2 model built from a config and a BPE tokenizer trained in the test.

Nothing is downloaded: the tokenizer is trained on a few hundred strings with the `tokenizers` library,
the model has random weights (2 layers, hidden size 32); both are saved to tmp_path and loaded back
through the backend exactly as a real checkpoint would be.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")

from corl_gym.data import Problem  # noqa: E402
from corl_gym.experts import ExpertSpec, load_pool  # noqa: E402

CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
PROBLEM = Problem(id="t-0", problem="What is 2+3?", answer="5", level=1)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    import torch

    path = tmp_path_factory.mktemp("tiny-qwen2")
    texts = [f"What is {a}+{b}? The answer is {a + b}. \\boxed{{{a + b}}}" for a in range(20) for b in range(15)]
    bpe = tokenizers.Tokenizer(tokenizers.models.BPE(unk_token=None))
    bpe.pre_tokenizer = tokenizers.pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = tokenizers.decoders.ByteLevel()
    special = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    trainer = tokenizers.trainers.BpeTrainer(vocab_size=400, special_tokens=special,
                                             initial_alphabet=tokenizers.pre_tokenizers.ByteLevel.alphabet())
    bpe.train_from_iterator(texts, trainer)
    tokenizer = transformers.PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<|im_end|>",
                                                     pad_token="<|endoftext|>")
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.save_pretrained(path)
    config = transformers.Qwen2Config(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64,
                                      num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1,
                                      max_position_embeddings=256, eos_token_id=tokenizer.eos_token_id,
                                      pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=True)
    torch.manual_seed(0)
    transformers.Qwen2ForCausalLM(config).save_pretrained(path)
    return path


def _spec(path, **options) -> ExpertSpec:
    return ExpertSpec(name="tiny", backend="hf", model=str(path), price_in=1.0, price_out=3.0,
                      options={"max_tokens": 12, "device": "cpu", "dtype": "float32", **options})


def test_greedy_reply_usage_cost_and_determinism(tiny_model):
    from corl_gym.experts.hf import HFExpert

    expert = HFExpert(_spec(tiny_model))
    reply = expert.call("What is 2+3?", PROBLEM)
    assert reply.ok and isinstance(reply.text, str)
    prompt_ids = expert.prompt_ids("What is 2+3?")
    rendered = expert.tokenizer.decode(prompt_ids)
    assert rendered.startswith("<|im_start|>user\nWhat is 2+3?<|im_end|>") and rendered.endswith("assistant\n")
    assert reply.prompt_tokens == len(prompt_ids)
    assert 1 <= reply.completion_tokens <= 12
    assert reply.cost_usd == pytest.approx((reply.prompt_tokens * 1.0 + reply.completion_tokens * 3.0) / 1e6)
    assert expert.call("What is 2+3?", PROBLEM).text == reply.text  # greedy: deterministic
    replies = asyncio.run(expert.acall_batch([("What is 1+1?", PROBLEM), ("What is 2+2?", PROBLEM)]))
    assert all(r.ok for r in replies)
    expert.close()


def test_plain_prompt_without_chat_template(tiny_model, tmp_path):
    from corl_gym.experts.hf import HFExpert

    expert = HFExpert(_spec(tiny_model))
    expert.tokenizer.chat_template = None
    assert expert.prompt_ids("What is 2+3?") == expert.tokenizer("What is 2+3?")["input_ids"]
    assert expert.call("What is 2+3?", PROBLEM).ok


def test_hf_pool_from_yaml(tiny_model, tmp_path):
    pool_file = tmp_path / "pool.yaml"
    pool_file.write_text(textwrap.dedent(f"""
        name: tiny
        budgets: {{low: 0.001, medium: 0.01, high: 0.05}}
        controller: {{name: self, backend: sim, model: s, price_in: 0, price_out: 0, skill: 1.0}}
        experts:
          - {{name: tiny, backend: hf, model: "{tiny_model}", price_in: 1.0, price_out: 3.0,
              max_tokens: 6, device: cpu, dtype: float32}}
    """))
    pool = load_pool(str(pool_file))
    [reply] = pool.call_many([("tiny", "What is 4+4?", PROBLEM)])
    assert reply.ok and reply.completion_tokens <= 6
    pool.close()


def test_backend_module_imports_torch_lazily():
    code = "import sys, corl_gym.experts.hf; assert 'torch' not in sys.modules and 'transformers' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)

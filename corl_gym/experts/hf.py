"""Backend `hf`: a local transformers causal LM as an expert.

Entry options: `model` is a local path or a hub id (whatever `from_pretrained` accepts; nothing here
downloads unless `from_pretrained` does). `device` (default: `cuda` when available, else `cpu`),
`dtype` (`auto`, `float32`, `bfloat16`, ...; default `auto`), `max_tokens` (new tokens, default 512),
`temperature` (default 0: greedy), `top_p` (default 1.0), `system_prompt`, `trust_remote_code`
(default false).

Decisions: torch and transformers are imported only when an `hf` entry is loaded, and the model loads
then (a bad path fails at pool load, not mid-episode). The query is rendered with the tokenizer's chat
template when it has one, else fed as plain text. Usage is exact: prompt tokens are the rendered
prompt's ids, completion tokens the generated ids up to and including the first end-of-sequence token.
One model serves one call at a time (a lock): generation is compute-bound, and threads would only
contend; a generation failure (e.g. out of memory) is returned as a reply's `error`.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from corl_gym.data import Problem
from corl_gym.experts.base import Expert, ExpertReply, ExpertSpec, error_reply


class HFExpert(Expert):
    """A transformers causal LM; see the module docstring."""

    default_max_tokens = 512

    def __init__(self, spec: ExpertSpec, **_: Any):
        super().__init__(spec)
        try:
            import torch
            import transformers
        except ImportError as exc:
            raise ImportError("the `hf` backend needs torch and transformers: pip install 'corl-gym[train]'") from exc
        opts = spec.options
        self._torch = torch
        self.device = str(opts.get("device") or ("cuda" if torch.cuda.is_available() else "cpu"))
        dtype = opts.get("dtype", "auto")
        trust = bool(opts.get("trust_remote_code", False))
        self.tokenizer = transformers.AutoTokenizer.from_pretrained(spec.model, trust_remote_code=trust)
        dtype = dtype if dtype == "auto" else getattr(torch, str(dtype))
        # transformers renamed `torch_dtype` to `dtype` in 4.56; the `train` extra allows older releases
        version = tuple(int(part) for part in transformers.__version__.split(".")[:2] if part.isdigit())
        dtype_kwarg = {"dtype" if version >= (4, 56) else "torch_dtype": dtype}
        self.model = transformers.AutoModelForCausalLM.from_pretrained(
            spec.model, trust_remote_code=trust, **dtype_kwarg
        ).to(self.device)
        self.model.eval()
        self.max_new_tokens = int(opts.get("max_tokens", self.default_max_tokens))
        self.temperature = float(opts.get("temperature", 0.0))
        self.top_p = float(opts.get("top_p", 1.0))
        self._lock = threading.Lock()

    def prompt_ids(self, query: str) -> list[int]:
        """The token ids the model sees for `query` (chat template when the tokenizer has one)."""
        system = self.spec.options.get("system_prompt")
        messages = ([{"role": "system", "content": str(system)}] if system else []) + [
            {"role": "user", "content": query}
        ]
        if getattr(self.tokenizer, "chat_template", None):
            text = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
            return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])
        return list(self.tokenizer(query)["input_ids"])

    def _generation_kwargs(self) -> dict[str, Any]:
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.tokenizer.eos_token_id
        kwargs: dict[str, Any] = {"max_new_tokens": self.max_new_tokens, "pad_token_id": pad}
        if self.temperature > 0:
            kwargs.update(do_sample=True, temperature=self.temperature, top_p=self.top_p)
        else:
            kwargs.update(do_sample=False)
        return kwargs

    def call(self, query: str, problem: Problem) -> ExpertReply:
        start = time.perf_counter()
        torch = self._torch
        try:
            ids = self.prompt_ids(query)
            inputs = torch.tensor([ids], device=self.device)
            with self._lock, torch.inference_mode():
                output = self.model.generate(
                    inputs, attention_mask=torch.ones_like(inputs), **self._generation_kwargs()
                )
            generated = self._until_eos(output[0, len(ids):].tolist())
        except Exception as exc:
            return error_reply(exc, latency_s=time.perf_counter() - start)
        text = self.tokenizer.decode(generated, skip_special_tokens=True)
        return ExpertReply(
            text=text,
            prompt_tokens=len(ids),
            completion_tokens=len(generated),
            cost_usd=self.spec.cost(len(ids), len(generated)),
            latency_s=time.perf_counter() - start,
        )

    def _until_eos(self, tokens: list[int]) -> list[int]:
        eos = self.tokenizer.eos_token_id
        stops = set(eos) if isinstance(eos, list) else {eos}
        for index, token in enumerate(tokens):
            if token in stops:
                return tokens[: index + 1]  # the end-of-sequence token is generated, hence billed
        return tokens

    def close(self) -> None:
        self.model = None
        self.tokenizer = None

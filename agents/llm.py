"""LLM controllers for `CORL-Math-v0` in token mode, and the generators behind them.

A generator turns a batch of prompts (token ids) into continuations: token ids, their log-probabilities
and text, stopping at the first stop string (`</call>`, `</answer>`: one action per turn), at the
end-of-sequence token, or after `max_new_tokens`. Two implementations share that interface:

- `HFGenerator`: a transformers causal LM, batched with left padding and a KV cache (dynamic by default,
  or a preallocated static cache with `cache="static"`, whose one-token decode step is compiled with
  CUDA graphs when `compile=True` on a GPU). bf16 on GPU is the caller's choice of model dtype.
- `VLLMGenerator`: a vLLM offline engine (`vllm.LLM`), imported only when built without an `engine`;
  prompts go in as `{"prompt_token_ids": ids}`, so nothing is re-tokenised.

Decisions: log-probabilities are those of the distribution the token was sampled from (after temperature
and top-p), as vLLM reports with `logprobs=0`; a learner recomputes its own under the training model, so
these are for logging and checks. A continuation keeps the whole token that completes a stop string and
nothing after it. The generator never decodes-and-re-encodes the controller's text: the ids it returns
are the ids the env appends.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from corl_gym.protocol import STOP_STRINGS


@dataclass
class Generation:
    """One continuation: `token_ids` (what the model wrote), `logprobs` (one per id), `text` (decoded),
    `finish_reason`: `stop` (a stop string), `eos` or `length`."""

    token_ids: list[int]
    logprobs: list[float]
    text: str
    finish_reason: str


class Generator(Protocol):
    def generate(
        self, prompts: Sequence[Sequence[int]], *, max_new_tokens: int, temperature: float = 1.0,
        top_p: float = 1.0, seed: int | None = None,
    ) -> list[Generation]: ...


class HFGenerator:
    """Batched sampling from a transformers causal LM (see the module docstring)."""

    def __init__(self, model: Any, tokenizer: Any, stop_strings: Sequence[str] = STOP_STRINGS,
                 cache: str = "dynamic", compile: bool = False, ignore_eos: bool = False):
        import torch

        if cache not in ("dynamic", "static"):
            raise ValueError(f"cache must be 'dynamic' or 'static', got {cache!r}")
        self.torch, self.model, self.tokenizer = torch, model, tokenizer
        self.stop_strings = tuple(stop_strings)
        self.cache, self.compile = cache, compile
        self.eos_id = None if ignore_eos else tokenizer.eos_token_id
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        # ids past the tokenizer (Qwen pads its embedding to a multiple of 128) are never sampled: they
        # cannot be decoded, and the env would drop them
        self.vocab_limit = len(tokenizer)
        self._enders: set[int] | None = None  # ids whose text holds a stop string's last character
        self._tail = max((len(s) for s in self.stop_strings), default=0) + 1  # tokens are >= 1 byte each
        self._decode_step = None
        import inspect

        # transformers 5 renamed `past_key_values` to `cache`; older releases (the `train` extra allows them)
        # use the old name
        parameters = inspect.signature(model.forward).parameters
        self._cache_kw = "cache" if "cache" in parameters else "past_key_values"
        # the prefill needs the last position's logits only ([batch, prompt, vocab] would not fit at scale)
        self._last_only = {"logits_to_keep": 1} if "logits_to_keep" in parameters else {}

    def generate(self, prompts, *, max_new_tokens: int, temperature: float = 1.0, top_p: float = 1.0,
                 seed: int | None = None) -> list[Generation]:
        if not prompts:
            return []
        torch = self.torch
        device = next(self.model.parameters()).device
        rng = torch.Generator(device=device)
        rng.manual_seed(int(seed) if seed is not None else int(torch.randint(0, 2**62, (1,)).item()))
        ids, mask = self._left_pad(prompts, device)
        with torch.no_grad():
            return self._decode(ids, mask, max_new_tokens, temperature, top_p, rng)

    def _left_pad(self, prompts, device):
        torch = self.torch
        width = max(len(p) for p in prompts)
        ids = torch.full((len(prompts), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(prompts), width), dtype=torch.long)
        for row, prompt in enumerate(prompts):
            if len(prompt):
                ids[row, width - len(prompt):] = torch.as_tensor(list(prompt), dtype=torch.long)
                mask[row, width - len(prompt):] = 1
        return ids.to(device), mask.to(device)

    def _decode(self, ids, mask, max_new_tokens, temperature, top_p, rng) -> list[Generation]:
        torch = self.torch
        batch, width = ids.shape
        total = width + max_new_tokens
        cache = self._new_cache(batch, total)
        full_mask = torch.zeros((batch, total), dtype=torch.long, device=ids.device)
        full_mask[:, :width] = mask
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        out = self.model(input_ids=ids, attention_mask=self._mask(full_mask, width), position_ids=positions,
                         use_cache=True, cache_position=torch.arange(width, device=ids.device),
                         **{self._cache_kw: cache}, **self._last_only)
        logits = out.logits[:, -1, :]
        next_pos = positions[:, -1] + 1
        tokens, logps = [[] for _ in range(batch)], [[] for _ in range(batch)]
        finish = [None] * batch
        for step in range(max_new_tokens):
            logits = logits.float()
            if logits.shape[-1] > self.vocab_limit:
                logits[:, self.vocab_limit:] = float("-inf")
            token, logp = _sample(torch, logits, temperature, top_p, rng)
            self._record(token, logp, tokens, logps, finish)
            if all(f is not None for f in finish) or step == max_new_tokens - 1:
                break
            full_mask[:, width + step] = 1
            logits = self._step(token, full_mask, width + step, next_pos + step, cache)
        finish = [f or "length" for f in finish]
        return [
            Generation(t, lp, self.tokenizer.decode(t, skip_special_tokens=False), f)
            for t, lp, f in zip(tokens, logps, finish)
        ]

    def _record(self, token, logp, tokens, logps, finish) -> None:
        for row, (t, lp) in enumerate(zip(token.tolist(), logp.tolist())):
            if finish[row] is not None:
                continue
            tokens[row].append(t)
            logps[row].append(lp)
            if t == self.eos_id:
                finish[row] = "eos"
            elif self.stop_strings and t in self._ending_ids():
                tail = self.tokenizer.decode(tokens[row][-self._tail:], skip_special_tokens=False)
                if any(s in tail for s in self.stop_strings):
                    finish[row] = "stop"

    def _ending_ids(self) -> set[int]:
        """Only a token that holds a stop string's last character can complete one: the tail is decoded
        for those alone, which keeps the per-step Python work small at large batch."""
        if self._enders is None:
            last = {s[-1] for s in self.stop_strings}
            pieces = self.tokenizer.convert_ids_to_tokens(list(range(self.vocab_limit)))
            self._enders = {i for i, piece in enumerate(pieces) if piece is not None and
                            any(ch in self.tokenizer.convert_tokens_to_string([piece]) for ch in last)}
        return self._enders

    def _new_cache(self, batch: int, total: int):
        from transformers import DynamicCache, StaticCache

        if self.cache == "static":
            return StaticCache(config=self.model.config, max_cache_len=total)
        return DynamicCache(config=self.model.config)

    def _mask(self, full_mask, upto: int):
        # a static cache takes the whole preallocated mask (fixed shapes let the step compile once)
        return full_mask if self.cache == "static" else full_mask[:, :upto]

    def _step(self, token, full_mask, slot: int, position, cache):
        torch = self.torch
        if self._decode_step is None:
            self._decode_step = self._forward_one
            if self.compile and self.cache == "static" and token.is_cuda:
                self._decode_step = torch.compile(self._forward_one, mode="reduce-overhead", fullgraph=False)
        cache_position = torch.tensor([slot], device=token.device)
        mask = self._mask(full_mask, slot + 1)
        return self._decode_step(token[:, None], mask, position[:, None], cache, cache_position)

    def _forward_one(self, token, mask, position, cache, cache_position):
        out = self.model(input_ids=token, attention_mask=mask, position_ids=position, use_cache=True,
                         cache_position=cache_position, **{self._cache_kw: cache})
        return out.logits[:, -1, :]


def _sample(torch, logits, temperature: float, top_p: float, rng):
    """Greedy when temperature is 0; else temperature and nucleus (top-p) sampling from
    `agents.logprobs.sampling_log_softmax`, the distribution the learners score its tokens under. Returns
    the tokens and their log-probabilities under the distribution sampled from."""
    from corl_gym.agents.logprobs import sampling_log_softmax

    if temperature <= 0:
        token = logits.argmax(-1)
        return token, torch.zeros_like(token, dtype=logits.dtype)
    logp = sampling_log_softmax(logits, temperature, top_p)
    token = torch.multinomial(logp.exp(), 1, generator=rng).squeeze(-1)
    return token, logp.gather(-1, token[:, None]).squeeze(-1)


class VLLMGenerator:
    """A vLLM offline engine behind the generator interface. Pass `engine` (a `vllm.LLM` or anything with
    its `generate(prompts, sampling_params, use_tqdm=...)` signature) and `sampling_params_cls`, or
    `model` to build `vllm.LLM(model=..., **engine_args)` here."""

    def __init__(self, model: str | None = None, *, engine: Any = None, sampling_params_cls: Any = None,
                 stop_strings: Sequence[str] = STOP_STRINGS, **engine_args: Any):
        if engine is None or sampling_params_cls is None:
            try:
                import vllm
            except ImportError as exc:
                raise ImportError("VLLMGenerator needs vllm: pip install 'corl-gym[vllm]'") from exc
            engine = engine or vllm.LLM(model=model, **engine_args)
            sampling_params_cls = sampling_params_cls or vllm.SamplingParams
        self.engine, self.sampling_params_cls = engine, sampling_params_cls
        self.stop_strings = list(stop_strings)

    def generate(self, prompts, *, max_new_tokens: int, temperature: float = 1.0, top_p: float = 1.0,
                 seed: int | None = None) -> list[Generation]:
        if not prompts:
            return []
        # One seed per request: vLLM seeds each request alone, so a shared seed would give two sub-envs
        # that drew the same problem the same sample.
        params = [self.sampling_params_cls(
            n=1, max_tokens=max_new_tokens, temperature=temperature, top_p=top_p,
            seed=None if seed is None else seed + row, stop=self.stop_strings, include_stop_str_in_output=True,
            logprobs=0, detokenize=True,
        ) for row in range(len(prompts))]
        requests = [{"prompt_token_ids": [int(t) for t in p]} for p in prompts]
        outputs = self.engine.generate(requests, sampling_params=params, use_tqdm=False)
        return [self._generation(out.outputs[0]) for out in outputs]

    @staticmethod
    def _generation(out: Any) -> Generation:
        ids = [int(t) for t in out.token_ids]
        logprobs = [float(step[t].logprob) if step and t in step else float("nan")
                    for t, step in zip(ids, out.logprobs or [None] * len(ids))]
        reason = {"stop": "stop", "length": "length"}.get(str(out.finish_reason), str(out.finish_reason))
        if reason == "stop" and getattr(out, "stop_reason", "") is None:
            reason = "eos"  # vLLM reports EOS as finish_reason "stop" with stop_reason None
        return Generation(ids, logprobs, out.text, reason)

    def load_weights(self, named_tensors: Any) -> None:
        """Push a learner's weights into the engine (colocated, single process), as TRL does."""
        runner = self.engine.llm_engine.model_executor.driver_worker.model_runner
        runner.model.load_weights(named_tensors)


class LLMController:
    """An agent for `CORL-Math-v0` (token mode) or its vector env: observations (context ids) in, one
    turn's token ids out. `act` takes one observation, `act_batch` several (one generator call)."""

    def __init__(self, generator: Generator, max_new_tokens: int = 96, temperature: float = 0.0,
                 top_p: float = 1.0, seed: int | None = None):
        self.generator, self.max_new_tokens = generator, max_new_tokens
        self.temperature, self.top_p, self.seed = temperature, top_p, seed
        self.last: list[Generation] = []

    def act(self, observation: Sequence[int]) -> np.ndarray:
        return self.act_batch([observation])[0]

    def act_batch(self, observations: Sequence[Sequence[int]]) -> list[np.ndarray]:
        prompts = [list(np.asarray(o, dtype=np.int64)) for o in observations]
        self.last = self.generator.generate(
            prompts, max_new_tokens=self.max_new_tokens, temperature=self.temperature, top_p=self.top_p,
            seed=self.seed,
        )
        return [np.asarray(g.token_ids, dtype=np.int64) for g in self.last]

"""Backend `vllm`: an in-process vLLM offline engine (`vllm.LLM`) as an expert.

Entry options: `max_tokens` (default 512), `temperature` (default 0: greedy), `top_p` (default 1.0),
`system_prompt`, `use_chat` (default true: `LLM.chat` applies the model's chat template; false sends
the raw query to `LLM.generate`), `engine_args` (a mapping passed to `vllm.LLM`, e.g.
`tensor_parallel_size`, `gpu_memory_utilization`, `max_model_len`, `dtype`).

Decisions: vllm is imported only when a `vllm` entry loads; without it the error says how to install
it. The engine batches natively, so `acall_batch` (which `Pool.acall_many` uses) sends all of one
step's calls to this expert as one `chat`/`generate` call, run in a worker thread so the event loop
keeps serving other experts. One batch runs at a time (the engine is not thread-safe). A failing batch
returns a reply with `error` for each of its calls. Usage is exact: `prompt_token_ids` and the
completion's `token_ids`. Tests inject `engine` (and `sampling_params_cls`) objects with vLLM's call
signature, so the code path runs without vllm or a GPU.
"""

from __future__ import annotations

import asyncio
import threading
import time
from types import SimpleNamespace
from typing import Any

from corl_gym.data import Problem
from corl_gym.experts.base import Expert, ExpertReply, ExpertSpec, error_reply


def _import_vllm() -> Any:
    try:
        import vllm
    except ImportError as exc:
        raise ImportError("the `vllm` backend needs vllm: pip install 'corl-gym[vllm]'") from exc
    return vllm


class VLLMExpert(Expert):
    """A vLLM offline engine; see the module docstring."""

    default_max_tokens = 512

    def __init__(self, spec: ExpertSpec, *, seed: int = 0, engine: Any = None, sampling_params_cls: Any = None,
                 **_: Any):
        super().__init__(spec)
        opts = spec.options
        if engine is None:
            vllm = _import_vllm()
            engine = vllm.LLM(model=spec.model, seed=seed, **dict(opts.get("engine_args") or {}))
            sampling_params_cls = sampling_params_cls or vllm.SamplingParams
        if sampling_params_cls is None:  # an injected engine without vllm installed
            try:
                sampling_params_cls = _import_vllm().SamplingParams
            except ImportError:
                sampling_params_cls = SimpleNamespace
        self.engine = engine
        self.use_chat = bool(opts.get("use_chat", True))
        temperature = float(opts.get("temperature", 0.0))
        sampling: dict[str, Any] = {
            "max_tokens": int(opts.get("max_tokens", self.default_max_tokens)),
            "temperature": temperature,
        }
        if temperature > 0:
            sampling.update(top_p=float(opts.get("top_p", 1.0)), seed=int(seed))
        self.sampling_params = sampling_params_cls(**sampling)
        self._lock = threading.Lock()

    def _conversation(self, query: str) -> list[dict[str, str]]:
        system = self.spec.options.get("system_prompt")
        return ([{"role": "system", "content": str(system)}] if system else []) + [{"role": "user", "content": query}]

    def _run_batch(self, queries: list[str]) -> list[ExpertReply]:
        start = time.perf_counter()
        with self._lock:
            if self.use_chat:
                outputs = self.engine.chat(
                    [self._conversation(q) for q in queries], self.sampling_params, use_tqdm=False
                )
            else:
                outputs = self.engine.generate(queries, self.sampling_params, use_tqdm=False)
        latency = time.perf_counter() - start
        if len(outputs) != len(queries):
            raise RuntimeError(f"the engine returned {len(outputs)} outputs for {len(queries)} prompts")
        return [self._reply(output, latency) for output in outputs]

    def _reply(self, output: Any, latency: float) -> ExpertReply:
        completion = output.outputs[0]
        prompt_tokens, completion_tokens = len(output.prompt_token_ids), len(completion.token_ids)
        return ExpertReply(
            text=completion.text,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            cost_usd=self.spec.cost(prompt_tokens, completion_tokens),
            latency_s=latency,
        )

    def call(self, query: str, problem: Problem) -> ExpertReply:
        try:
            return self._run_batch([query])[0]
        except Exception as exc:
            return error_reply(exc)

    async def acall(self, query: str, problem: Problem) -> ExpertReply:
        return (await self.acall_batch([(query, problem)]))[0]

    async def acall_batch(self, items: list[tuple[str, Problem]]) -> list[ExpertReply]:
        if not items:
            return []
        try:
            return await asyncio.to_thread(self._run_batch, [query for query, _ in items])
        except Exception as exc:
            return [error_reply(exc)] * len(items)

    def close(self) -> None:
        self.engine = None

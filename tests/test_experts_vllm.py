"""Backend `vllm` through a fake engine with `vllm.LLM`'s call signature and RequestOutput-shaped
results, so the code path (batching, chat vs generate, usage, cost, failures) runs without vllm."""

from __future__ import annotations

import asyncio
import importlib.util
from dataclasses import dataclass, field

import pytest

from corl_gym.data import Problem
from corl_gym.experts import ExpertSpec, Pool
from corl_gym.experts.sim import SimExpert
from corl_gym.experts.vllm_backend import VLLMExpert

PROBLEM = Problem(id="t-0", problem="What is 2+3?", answer="5", level=1)


@dataclass
class FakeSamplingParams:
    max_tokens: int = 16
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int | None = None


@dataclass
class CompletionOutput:
    text: str
    token_ids: list[int]


@dataclass
class RequestOutput:
    prompt_token_ids: list[int]
    outputs: list[CompletionOutput]


@dataclass
class FakeLLM:
    """Answers each prompt with `\\boxed{<word count>}`; prompt ids = one per character."""

    fail: bool = False
    calls: list = field(default_factory=list)

    def chat(self, messages, sampling_params=None, use_tqdm=True, **kwargs):
        self.calls.append(("chat", messages, sampling_params))
        return [self._output(" ".join(m["content"] for m in conversation)) for conversation in messages]

    def generate(self, prompts, sampling_params=None, use_tqdm=True, **kwargs):
        self.calls.append(("generate", prompts, sampling_params))
        return [self._output(prompt) for prompt in prompts]

    def _output(self, prompt: str) -> RequestOutput:
        if self.fail:
            raise RuntimeError("CUDA out of memory (fake)")
        text = f"\\boxed{{{len(prompt.split())}}}"
        return RequestOutput(prompt_token_ids=list(range(len(prompt))), outputs=[CompletionOutput(text, [1, 2, 3])])


def _expert(engine: FakeLLM, **options) -> VLLMExpert:
    spec = ExpertSpec(name="local", backend="vllm", model="m", price_in=1.0, price_out=2.0, options=options)
    return VLLMExpert(spec, engine=engine, sampling_params_cls=FakeSamplingParams)


def test_chat_reply_usage_and_cost():
    engine = FakeLLM()
    reply = _expert(engine, max_tokens=64, system_prompt="Be brief.").call("What is 2+3?", PROBLEM)
    assert reply.ok and reply.text == "\\boxed{5}"  # "Be brief. What is 2+3?": 5 words
    assert (reply.prompt_tokens, reply.completion_tokens) == (len("Be brief. What is 2+3?"), 3)
    assert reply.cost_usd == pytest.approx((reply.prompt_tokens * 1.0 + 3 * 2.0) / 1e6)
    kind, messages, params = engine.calls[0]
    assert kind == "chat" and messages[0][0] == {"role": "system", "content": "Be brief."}
    assert params == FakeSamplingParams(max_tokens=64, temperature=0.0)


def test_generate_mode_and_sampling_seed():
    engine = FakeLLM()
    expert = _expert(engine, use_chat=False, temperature=0.7, top_p=0.9)
    assert expert.call("a b c", PROBLEM).text == "\\boxed{3}"
    kind, prompts, params = engine.calls[0]
    assert kind == "generate" and prompts == ["a b c"]
    assert params.temperature == 0.7 and params.top_p == 0.9 and params.seed == 0


def test_pool_fan_out_is_one_engine_batch():
    engine = FakeLLM()
    controller = SimExpert(ExpertSpec(name="self", backend="sim", model="s", options={"skill": 1.0}))
    pool = Pool(name="t", controller=controller, experts={"local": _expert(engine)}, budgets={"low": 1.0})
    calls = [("local", "q " * i, PROBLEM) for i in range(1, 6)] + [("self", "q", PROBLEM)]
    replies = asyncio.run(pool.acall_many(calls))
    assert [r.text for r in replies[:5]] == [f"\\boxed{{{i}}}" for i in range(1, 6)]
    assert len(engine.calls) == 1  # five calls, one engine batch
    assert replies[5].ok


def test_engine_failure_is_an_error_reply_per_call():
    expert = _expert(FakeLLM(fail=True))
    replies = asyncio.run(expert.acall_batch([("q", PROBLEM), ("r", PROBLEM)]))
    assert [r.ok for r in replies] == [False, False] and "out of memory" in replies[0].error
    assert not expert.call("q", PROBLEM).ok


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vllm is installed here")
def test_missing_vllm_says_how_to_install():
    spec = ExpertSpec(name="local", backend="vllm", model="m")
    with pytest.raises(ImportError, match=r"pip install 'corl-gym\[vllm\]'"):
        VLLMExpert(spec)

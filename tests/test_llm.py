"""Generators and the LLM controller: batched HF sampling with left padding and a KV cache that matches
transformers' own `generate`, stop strings, and the vLLM adapter against a fake engine, alone and as
PPO's rollout engine (`--rollout-engine vllm`)."""

from __future__ import annotations

import sys
import types
from dataclasses import dataclass, field

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from corl_gym.agents.llm import HFGenerator, LLMController, VLLMGenerator  # noqa: E402
from corl_gym.agents.tiny import tiny_qwen2  # noqa: E402


@pytest.fixture(scope="module")
def model(tokenizer):
    # a large init spreads the logits, so greedy outputs differ from prompt to prompt
    return tiny_qwen2(len(tokenizer), "micro", seed=0, initializer_range=0.5).eval()


@pytest.mark.parametrize("cache", ["dynamic", "static"])
def test_batched_left_padded_greedy_equals_transformers_generate(tokenizer, model, cache):
    prompts = [tokenizer.encode("What is"), tokenizer.encode("Solve for x in 12 + 5 = 17 and the answer is")]
    generator = HFGenerator(model, tokenizer, stop_strings=(), cache=cache)
    outs = generator.generate(prompts, max_new_tokens=6, temperature=0)
    for prompt, out in zip(prompts, outs):
        ref = model.generate(torch.tensor([prompt]), attention_mask=torch.ones(1, len(prompt), dtype=torch.long),
                             max_new_tokens=6, do_sample=False, pad_token_id=tokenizer.pad_token_id)
        expected = ref[0, len(prompt):].tolist()
        if tokenizer.eos_token_id in expected:  # transformers stops at EOS too
            expected = expected[: expected.index(tokenizer.eos_token_id) + 1]
        assert out.token_ids == expected
        assert out.text == tokenizer.decode(out.token_ids)
        assert len(out.logprobs) == len(out.token_ids)


def test_sampling_is_seeded_and_logprobs_are_those_of_the_sampled_tokens(tokenizer, model):
    generator = HFGenerator(model, tokenizer, stop_strings=())
    prompt = tokenizer.encode("the answer is")
    a = generator.generate([prompt], max_new_tokens=5, temperature=0.7, seed=3)[0]
    b = generator.generate([prompt], max_new_tokens=5, temperature=0.7, seed=3)[0]
    assert a.token_ids == b.token_ids
    with torch.no_grad():
        logits = model(torch.tensor([prompt + a.token_ids])).logits[0, len(prompt) - 1 : -1] / 0.7
    expected = torch.log_softmax(logits, -1).gather(-1, torch.tensor(a.token_ids)[:, None]).squeeze(-1)
    assert np.allclose(a.logprobs, expected.tolist(), atol=1e-4)


class ScriptedLM(torch.nn.Module):
    """Writes a fixed script per row, whatever the context (the cache argument is accepted and ignored)."""

    def __init__(self, scripts, vocab, config):
        super().__init__()
        self.scripts, self.vocab, self.config = scripts, vocab, config
        self.anchor = torch.nn.Parameter(torch.zeros(1))
        self.step = 0

    def forward(self, input_ids, attention_mask=None, position_ids=None, cache=None, use_cache=None,
                cache_position=None, **kwargs):
        if input_ids.shape[1] > 1:
            self.step = 0
        logits = torch.full((input_ids.shape[0], input_ids.shape[1], self.vocab), -1e9)
        for row, script in enumerate(self.scripts):
            logits[row, -1, script[min(self.step, len(script) - 1)]] = 0.0
        self.step += 1
        return type("Out", (), {"logits": logits})()


def test_generation_stops_at_the_first_stop_string_or_eos(tokenizer, model):
    call = tokenizer.encode('<think>hm</think><call expert="o3">q</call> trailing words')
    answer = tokenizer.encode("<answer>\\boxed{4}</answer><call")
    eos = tokenizer.encode("no action") + [tokenizer.eos_token_id] + tokenizer.encode("after")
    rambling = tokenizer.encode("one two three four five six seven")
    lm = ScriptedLM([call, answer, eos, rambling], len(tokenizer), model.config)
    outs = HFGenerator(lm, tokenizer).generate([[1, 2], [3], [4, 5, 6], [7]], max_new_tokens=20, temperature=0)
    assert outs[0].text.endswith("</call>") and "trailing" not in outs[0].text and outs[0].finish_reason == "stop"
    assert outs[0].token_ids == call[: len(outs[0].token_ids)]
    assert outs[1].text.endswith("</answer>") and outs[1].finish_reason == "stop"
    assert outs[2].token_ids[-1] == tokenizer.eos_token_id and outs[2].finish_reason == "eos"
    assert outs[3].finish_reason == "length" and len(outs[3].token_ids) == 20


@dataclass
class FakeSamplingParams:
    n: int = 1
    max_tokens: int = 16
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int | None = None
    stop: list = field(default_factory=list)
    include_stop_str_in_output: bool = False
    logprobs: int | None = None
    detokenize: bool = True


@dataclass
class Logprob:
    logprob: float


@dataclass
class CompletionOutput:
    text: str
    token_ids: list
    logprobs: list
    finish_reason: str
    stop_reason: object = None


@dataclass
class RequestOutput:
    prompt_token_ids: list
    outputs: list


@dataclass
class FakeLLM:
    """`vllm.LLM.generate`'s signature: token prompts in, RequestOutputs out."""

    calls: list = field(default_factory=list)

    def generate(self, prompts, sampling_params=None, use_tqdm=True, **kwargs):
        self.calls.append((prompts, sampling_params))
        outputs = []
        for p in prompts:
            ids = [len(p["prompt_token_ids"]), 7]
            stop = "</call>" if len(p["prompt_token_ids"]) > 1 else None
            text = "<call>x</call>" if stop else "x"
            out = CompletionOutput(text, ids, [{t: Logprob(-0.5)} for t in ids], "stop", stop)
            outputs.append(RequestOutput(p["prompt_token_ids"], [out]))
        return outputs


def test_vllm_generator_adapts_the_engine_call_and_outputs():
    engine = FakeLLM()
    generator = VLLMGenerator(engine=engine, sampling_params_cls=FakeSamplingParams)
    outs = generator.generate([[5, 6, 7], [9]], max_new_tokens=32, temperature=0.5, seed=1)
    prompts, (params, second) = engine.calls[0]
    assert prompts == [{"prompt_token_ids": [5, 6, 7]}, {"prompt_token_ids": [9]}]
    assert params.stop == ["</call>", "</answer>"] and params.include_stop_str_in_output
    assert params.max_tokens == 32 and params.temperature == 0.5 and params.logprobs == 0 and params.seed == 1
    assert second.seed == 2  # one seed per request: equal prompts still draw different samples
    assert outs[0].token_ids == [3, 7] and outs[0].logprobs == [-0.5, -0.5] and outs[0].finish_reason == "stop"
    assert outs[1].finish_reason == "eos"  # vLLM: finish_reason "stop" with stop_reason None is EOS
    assert generator.generate([], max_new_tokens=4) == []


def test_vllm_generator_without_vllm_says_how_to_install(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "vllm", None)
    with pytest.raises(ImportError, match="corl-gym\\[vllm\\]"):
        VLLMGenerator("some/model")


def test_controller_plays_token_mode_episodes(tokenizer, model):
    import gymnasium as gym

    import corl_gym  # noqa: F401

    env = gym.make("CORL-Math-v0", tokenizer=tokenizer, max_turns=2)
    controller = LLMController(HFGenerator(model, tokenizer), max_new_tokens=8)
    obs, info = env.reset(seed=0)
    done, turns = False, 0
    while not done:
        action = controller.act(obs)
        assert action.dtype == np.int64 and list(action) == controller.last[0].token_ids
        obs, _, terminated, truncated, info = env.step(action)
        done, turns = terminated or truncated, turns + 1
    assert 1 <= turns <= 2


class FakeVLLMEngine:
    """`vllm.LLM` as PPO's rollout engine uses it: built from a model folder, it answers every prompt with
    `TURN` and keeps the weights pushed into it (copies: the actor's tensors change in place)."""

    TURN = "<answer>\\boxed{7}</answer>"
    built: list = []

    def __init__(self, model, **engine_args):
        from corl_gym.agents.tiny import load_tokenizer

        self.model, self.engine_args, self.params, self.pushed = model, engine_args, [], []
        self.ids = load_tokenizer(model).encode(self.TURN)
        push = lambda named: self.pushed.append({k: v.detach().clone() for k, v in named})  # noqa: E731
        runner = types.SimpleNamespace(model=types.SimpleNamespace(load_weights=push))
        self.llm_engine = types.SimpleNamespace(
            model_executor=types.SimpleNamespace(driver_worker=types.SimpleNamespace(model_runner=runner)))
        FakeVLLMEngine.built.append(self)

    def generate(self, prompts, sampling_params=None, use_tqdm=True):
        self.params.append(sampling_params)
        out = CompletionOutput(self.TURN, list(self.ids), [{t: Logprob(-0.5)} for t in self.ids], "stop", "</answer>")
        return [RequestOutput(p["prompt_token_ids"], [out]) for p in prompts]


def test_ppo_rolls_out_with_a_vllm_engine_and_pushes_the_actors_weights_each_rollout(micro_model_dir, tmp_path,
                                                                                      monkeypatch):
    from transformers import AutoModelForCausalLM

    from corl_gym.agents.ppo.config import PPOConfig
    from corl_gym.agents.ppo.logger import read_metrics
    from corl_gym.agents.ppo.train import train

    fake_vllm = types.SimpleNamespace(LLM=FakeVLLMEngine, SamplingParams=FakeSamplingParams)
    monkeypatch.setitem(sys.modules, "vllm", fake_vllm)
    monkeypatch.setattr(FakeVLLMEngine, "built", [])
    cfg = PPOConfig(model=str(micro_model_dir), out=str(tmp_path / "run"), device="cpu", iterations=2, num_envs=2,
                    max_new_tokens=16, max_turns=1, num_minibatches=1, temperature=0.7, top_p=0.9, actor_lr=1e-3,
                    ent_coef=0.01, rollout_engine="vllm", progress=False, tensorboard=False)  # entropy: the actor moves
    train(cfg)

    (engine,) = FakeVLLMEngine.built
    assert engine.model == str(micro_model_dir)
    assert engine.engine_args["seed"] == 0 and engine.engine_args["dtype"] == "float32"
    assert len(engine.params) == 2  # one turn per rollout, one SamplingParams per request
    assert {(p.temperature, p.top_p, p.max_tokens) for batch in engine.params for p in batch} == {(0.7, 0.9, 16)}
    names = set(AutoModelForCausalLM.from_pretrained(micro_model_dir).state_dict())
    assert len(engine.pushed) == 2 and set(engine.pushed[0]) == set(engine.pushed[1]) == names  # before each rollout
    assert any(not torch.equal(engine.pushed[0][k], engine.pushed[1][k]) for k in names)  # the update reached it
    rows = read_metrics(tmp_path / "run")
    assert [r["step"] for r in rows] == [1, 2] and rows[-1]["env/well_formed_rate"] == 1.0  # the engine's turns


def test_ppo_without_vllm_says_how_to_install_before_loading_anything(micro_model_dir, tmp_path, monkeypatch, capsys):
    from corl_gym.cli import main

    monkeypatch.setitem(sys.modules, "vllm", None)
    argv = ["train", "--learner", "ppo", "--model", str(micro_model_dir), "--out", str(tmp_path / "run"),
            "--device", "cpu"]
    assert main([*argv, "--rollout-engine", "vllm"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "--rollout-engine vllm needs vllm: pip install 'corl-gym[vllm]'" in lines[0]
    assert not (tmp_path / "run").exists()
    with pytest.raises(SystemExit, match="2"):  # only hf, vllm or auto
        main([*argv, "--rollout-engine", "fast"])
    assert "invalid choice: 'fast'" in capsys.readouterr().err


def test_auto_picks_vllm_only_for_one_process_on_a_gpu(monkeypatch):
    from corl_gym.agents.ppo.engine import engine_kind

    assert engine_kind("auto", "cpu", 1) == engine_kind("hf", "cuda", 1) == "hf"
    monkeypatch.setitem(sys.modules, "vllm", None)  # not installed
    assert engine_kind("auto", "cuda", 1) == "hf"
    monkeypatch.setitem(sys.modules, "vllm", types.ModuleType("vllm"))  # installed
    with pytest.raises(ValueError, match="one process"):
        engine_kind("vllm", "cuda", 2)

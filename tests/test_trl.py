"""TRL GRPO on CORL-Math-v0 through `rollout_func`: the rollout's fields and mask, the reward passed
through, the repeated prompts, and a 2-step GRPO run of a tiny model on CPU (nothing downloaded)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("trl", reason="trl is not installed: pip install 'corl-gym[trl]'")

from corl_gym.agents.llm import Generation, HFGenerator  # noqa: E402
from corl_gym.agents.tiny import env_corpus, tiny_qwen2, train_tokenizer  # noqa: E402
from corl_gym.agents.trl import CORLRollout, GRPOConfig, env_reward, episode_prompts  # noqa: E402
from corl_gym.envs.math_env import CORLMathEnv  # noqa: E402
from corl_gym.splits import select_problems  # noqa: E402

EXPERT = "gpt-4.1-nano"


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    """The tiny-cpu builder's tokenizer (trained on the env's texts: prompts of ~350 ids), smaller."""
    from corl_gym.experts import load_pool

    pool = load_pool("sim-paper")
    texts = env_corpus(pool, select_problems("synthetic", "train", integer_answers=True, limit=60), n_replies=30)
    pool.close()
    return train_tokenizer(texts, tmp_path_factory.mktemp("tok"), vocab_size=1500)


@pytest.fixture(scope="module")
def problems():
    return select_problems("synthetic", "train", integer_answers=True, limit=12)


def split_ids(tokenizer, text):
    """One id per character: a valid tokenisation unlike the text's own, which the env must keep verbatim."""
    return [i for ch in text for i in tokenizer.encode(ch)]


class ScriptedGenerator:
    """Turn k of every episode is `turns[k]`, each id with log-prob -0.5 - k."""

    def __init__(self, turns):
        self.turns, self.calls = turns, 0

    def generate(self, prompts, *, max_new_tokens, temperature=1.0, top_p=1.0, seed=None):
        turn = self.turns[min(self.calls, len(self.turns) - 1)]
        logprob = -0.5 - min(self.calls, len(self.turns) - 1)
        self.calls += 1
        return [Generation(list(turn), [logprob] * len(turn), "", "stop") for _ in prompts]


def replay(tokenizer, problems, options, turns):
    """The same episode on a fresh env: prompt ids, the env's ids after each turn, the final reward."""
    env = CORLMathEnv(problems=problems, tokenizer=tokenizer, max_turns=3, budget="mixed")
    _, info = env.reset(seed=0, options=options)
    prompt, blocks, reward = list(info["env_token_ids"]), [], 0.0
    for turn in turns:
        _, reward, terminated, truncated, info = env.step(np.asarray(turn))
        blocks.append(list(info["env_token_ids"]))
        if terminated or truncated:
            break
    env.close()
    return prompt, blocks, reward


def test_rollout_fields_mask_and_ids_are_the_env_trajectory(tokenizer, problems):
    call = split_ids(tokenizer, f'<call expert="{EXPERT}">{problems[0].problem}</call>')
    answer = split_ids(tokenizer, f"<answer>\\boxed{{{problems[0].answer}}}</answer>")
    rollout = CORLRollout(tokenizer, problems, max_turns=3, generator=ScriptedGenerator([call, answer]))
    prompts = episode_prompts(problems[:2], ["low", "high"])
    out = rollout(prompts, trainer=None)
    rollout.close()

    assert {"prompt_ids", "completion_ids", "logprobs", "env_mask", "env_reward"} <= set(out)
    assert all(len(v) == len(prompts) for v in out.values())
    for i in range(len(prompts)):
        options = {"problem_id": problems[i // 2].id, "budget": ["low", "high"][i % 2]}
        prompt_ids, (block1, block2), reward = replay(tokenizer, problems, options, [call, answer])
        assert out["prompt_ids"][i] == prompt_ids
        assert out["completion_ids"][i] == call + block1 + answer + block2  # generated ids and env ids, verbatim
        assert out["env_mask"][i] == [1] * len(call) + [0] * len(block1) + [1] * len(answer) + [0] * len(block2)
        assert len(out["logprobs"][i]) == len(out["completion_ids"][i])
        expected = [-0.5] * len(call) + [0.0] * len(block1) + [-1.5] * len(answer) + [0.0] * len(block2)
        assert out["logprobs"][i] == expected
        assert out["env_reward"][i] == reward and out["budget"][i] == options["budget"]
        assert out["expert_called"][i] == 1.0
        expert_text = tokenizer.decode(block1)
        assert expert_text.lstrip().startswith(f'<response expert="{EXPERT}">') and "<budget spent=" in expert_text
    assert {r for r in out["env_reward"]} <= {0.0, 1.0} and any(out["correct"]) == any(r > 0 for r in out["env_reward"])


def test_repeated_prompts_give_one_episode_per_row_groups_share_the_problem(tokenizer, problems):
    """TRL passes each prompt `num_generations` times in a row: one episode per row, not G per prompt."""
    group = 3
    unique = episode_prompts(problems[3:5], ["medium"])
    prompts = [p for p in unique for _ in range(group)]  # what the RepeatSampler delivers
    model = tiny_qwen2(len(tokenizer), "micro", seed=0).eval()
    rollout = CORLRollout(tokenizer, problems, max_turns=1, max_new_tokens=8, generator=HFGenerator(model, tokenizer))
    out = rollout(prompts, trainer=None)
    rollout.close()
    assert len(out["completion_ids"]) == len(prompts) == 6
    for g in range(2):
        rows = range(g * group, (g + 1) * group)
        assert len({tuple(out["prompt_ids"][r]) for r in rows}) == 1  # same problem and budget in a group
        assert len({tuple(out["completion_ids"][r]) for r in rows}) > 1  # different samples
    assert out["prompt_ids"][0] != out["prompt_ids"][group]
    for ids, mask, logprobs in zip(out["completion_ids"], out["env_mask"], out["logprobs"]):
        assert len(ids) == len(mask) == len(logprobs) and mask[0] == 1
        assert all(lp < 0 for lp, m in zip(logprobs, mask) if m)
        assert all(lp == 0 for lp, m in zip(logprobs, mask) if not m)


def test_env_reward_passes_the_env_reward_through_and_logs_per_budget():
    logged = {}
    rewards = env_reward(["a", "b", "c"], env_reward=[1.0, 0.0, 0.5], budget=["low", "low", "high"],
                         expert_called=[1.0, 0.0, 1.0], log_metric=logged.__setitem__, prompts=["x"] * 3)
    assert rewards == [1.0, 0.0, 0.5]
    assert logged == {"env/reward/high": 0.5, "env/expert_call_ratio/high": 1.0,
                      "env/reward/low": 0.5, "env/expert_call_ratio/low": 0.5}


class RecordingRollout(CORLRollout):
    """The real rollout, with a reward that varies inside each group (a random model earns 0 everywhere):
    row r gets r % 2, so the trainer's logged reward checks the pass-through and advantages are non-zero."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.outputs = []

    def __call__(self, prompts, trainer):
        out = super().__call__(prompts, trainer)
        out["env_reward"] = [float(r % 2) for r in range(len(prompts))]
        self.outputs.append(out)
        return out


def test_two_grpo_steps_on_a_tiny_model_on_cpu(tokenizer, tmp_path):
    from transformers import AutoModelForCausalLM

    from corl_gym.agents.evaluate import resolve_checkpoint
    from corl_gym.agents.trl import train

    model_dir = tmp_path / "model"
    start = tiny_qwen2(len(tokenizer), "micro", seed=0)
    start.save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    cfg = GRPOConfig(model=str(model_dir), out=str(tmp_path / "run"), device="cpu", integer_answers=True, max_turns=2,
                     episodes=8, episodes_per_step=8, num_generations=4, num_minibatches=2, max_new_tokens=16,
                     lr=1e-3, beta=0.001, progress=False)
    train_problems = select_problems("synthetic", "train", integer_answers=True)  # the trainer's dataset
    rollout = RecordingRollout(tokenizer, train_problems, max_turns=2, max_new_tokens=16, seed=0)
    folder = train(cfg, rollout=rollout)

    assert len(rollout.outputs) == 1 and len(rollout.outputs[0]["completion_ids"]) == 8  # one generation of 8
    out = rollout.outputs[0]
    metrics = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    logs = [m for m in metrics if "loss" in m]
    assert [m["step"] for m in logs] == [1, 2] and all(math.isfinite(m["loss"]) for m in logs)  # two minibatches
    assert logs[0]["reward"] == pytest.approx(0.5) and logs[0]["rewards/env_reward/mean"] == pytest.approx(0.5)
    # TRL counts only env_mask == 1 tokens as the completion's length: the mask reached the trainer
    controller_tokens = [sum(m) for m in out["env_mask"]]
    assert logs[0]["completions/mean_length"] == pytest.approx(sum(controller_tokens) / 8)
    assert resolve_checkpoint(tmp_path / "run") == folder  # `corl-gym eval --checkpoint OUT` finds the model
    assert json.loads((folder / "corl_train.json").read_text())["episodes"] == 8
    trained = AutoModelForCausalLM.from_pretrained(folder)
    assert any(not torch.equal(p, q) for p, q in zip(start.parameters(), trained.parameters()))


def test_preset_matches_the_ppo_presets_task_and_episode_budget():
    from corl_gym.agents.recipe import PRESETS
    from corl_gym.agents.trl import parse_prompt, preset_overrides

    ppo, grpo = PRESETS["tiny-cpu"]["ppo"], preset_overrides("tiny-cpu")
    assert grpo["episodes"] == ppo["iterations"] * ppo["num_envs"] and grpo["episodes_per_step"] == ppo["num_envs"]
    assert (grpo["max_turns"], grpo["max_new_tokens"], grpo["lr"], grpo["beta"]) == (
        ppo["max_turns"], ppo["max_new_tokens"], ppo["actor_lr"], ppo["kl_coef"])
    assert grpo["episodes_per_step"] % grpo["num_generations"] == 0
    assert parse_prompt(episode_prompts(select_problems("synthetic", "train", limit=1), ["low"])[0])["budget"] == "low"

"""Rollouts through the token-mode vector env: a trajectory's ids are the concatenation of the prompt, the
generated ids and the env's ids, never re-tokenised, with a mask that is 1 exactly on generated ids."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from corl_gym.agents.llm import Generation  # noqa: E402
from corl_gym.agents.rollout import collate, play, summarize_episodes  # noqa: E402
from corl_gym.envs.vector import CORLMathVectorEnv  # noqa: E402


class ScriptedGenerator:
    """Turn k of every episode is `turns[k]` (ids chosen to differ from the text's own tokenisation)."""

    def __init__(self, turns):
        self.turns, self.calls, self.seen = turns, 0, []

    def generate(self, prompts, *, max_new_tokens, temperature=1.0, top_p=1.0, seed=None):
        self.seen.append([list(p) for p in prompts])
        turn = self.turns[min(self.calls, len(self.turns) - 1)]
        self.calls += 1
        return [Generation(list(turn), [-0.25] * len(turn), "", "stop") for _ in prompts]


def split_ids(tokenizer, text):
    """One id per character: a valid but unusual tokenisation the env must keep verbatim."""
    return [i for ch in text for i in tokenizer.encode(ch)]


def test_trajectory_is_prompt_generated_and_env_ids_with_an_exact_mask(tokenizer):
    call = split_ids(tokenizer, '<call expert="gpt-4.1-nano">What is 1+1?</call>')
    answer = split_ids(tokenizer, "<answer>\\boxed{2}</answer>")
    assert call != tokenizer.encode(tokenizer.decode(call))  # the env must not re-tokenise these
    envs = CORLMathVectorEnv(3, tokenizer=tokenizer, max_turns=3)
    generator = ScriptedGenerator([call, answer])
    episodes, timing = play(envs, generator, seed=5, max_new_tokens=64)

    for i, episode in enumerate(episodes):
        prompt = generator.seen[0][i]
        response_block = generator.seen[1][i][len(prompt) + len(call):]
        assert episode.ids == prompt + call + response_block + answer  # the answer step appends nothing
        mask = [0] * len(prompt) + [1] * len(call) + [0] * len(response_block) + [1] * len(answer)
        assert episode.action_mask == mask
        assert '<response expert="gpt-4.1-nano">' in tokenizer.decode(response_block)
        assert episode.calls["gpt-4.1-nano"] == 1 and episode.turns == 2 and episode.action_errors == 0
        assert episode.cost_usd > 0 and episode.gen_logprobs == [-0.25] * (len(call) + len(answer))
    assert timing.gen_tokens == 3 * (len(call) + len(answer))

    batch = collate(episodes, tokenizer.pad_token_id)
    lengths = batch["attention_mask"].sum(1)
    assert batch["action_mask"].sum().item() == 3 * (len(call) + len(answer))
    assert all(batch["ids"][row, : int(lengths[row])].tolist() == e.ids for row, e in enumerate(episodes))
    summary = summarize_episodes(episodes)
    assert summary["env/expert_call_ratio"] == 1.0 and summary["env/well_formed_rate"] == 1.0


def test_finished_episodes_stop_generating_and_truncation_is_recorded(tokenizer):
    bad = tokenizer.encode("no tags here")
    envs = CORLMathVectorEnv(2, tokenizer=tokenizer, max_turns=2)
    generator = ScriptedGenerator([bad])
    episodes, _ = play(envs, generator, seed=0, max_new_tokens=8)
    assert generator.calls == 2
    for e in episodes:
        assert e.truncated and e.reward == 0.0 and e.action_errors == 2
        assert sum(e.action_mask) == 2 * len(bad)
    assert summarize_episodes(episodes)["env/well_formed_rate"] == 0.0


def test_pinned_problems_and_budgets(tokenizer):
    envs = CORLMathVectorEnv(2, tokenizer=tokenizer, max_turns=1)
    problem_ids = [envs.envs[0].problems[7].id, envs.envs[0].problems[9].id]
    pins = [{"problem_id": problem_ids[0], "budget": "low"}, {"problem_id": problem_ids[1], "budget": "high"}]
    generator = ScriptedGenerator([tokenizer.encode("<answer>1</answer>")])
    episodes, _ = play(envs, generator, seed=0, max_new_tokens=8, pins=pins)
    assert [e.problem_id for e in episodes] == problem_ids
    assert [e.budget for e in episodes] == ["low", "high"]
    assert np.all([e.turns == 1 for e in episodes])

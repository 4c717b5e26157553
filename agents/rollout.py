"""Token-mode episodes as training trajectories: the one `Episode` every LLM learner and the evaluator
build, from a generator's turns (`play`, a vector env in lockstep) or a scripted router's (SFT's
demonstrations).

The trajectory is built from ids only, never from text: `prompt | turn | env block | turn | ...`, where
the prompt and env blocks come from `info["env_token_ids"]` and each turn is the controller's ids
exactly as the env appended them. `action_mask` is 1 exactly on turn ids.

`play` plays one episode per sub-env, all in lockstep: each step generates the turns of the live
episodes in one batched call, then steps the vector env once (all expert calls concurrent). A sub-env
whose episode ended is auto-reset by the vector env on the next step (Gymnasium's NEXT_STEP mode); its
later steps get an empty action and are ignored (they cost nothing: no call is made).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from corl_gym.agents.report import episode_stats, well_formed_rate

# What an episode reads from a step's info (a vector env's holds one entry per sub-env)
_STEP_KEYS = ("env_token_ids", "turn", "action_error", "problem_id", "correct", "over_budget", "cost_usd")


@dataclass
class Episode:
    """One episode: the trajectory ids, the controller mask, the final reward and outcome."""

    ids: list[int]
    action_mask: list[int]
    reward: float = 0.0
    budget: str = ""
    problem_id: str = ""
    correct: bool = False
    cost_usd: float = 0.0
    over_budget: bool = False
    calls: dict[str, int] = field(default_factory=dict)
    turns: int = 0
    action_errors: int = 0
    truncated: bool = False
    gen_logprobs: list[float] = field(default_factory=list)

    @classmethod
    def begin(cls, prompt_ids: Sequence[int], budget: str, problem_id: str = "") -> Episode:
        return cls(list(prompt_ids), [0] * len(prompt_ids), budget=str(budget), problem_id=str(problem_id))

    def add_step(self, turn: Sequence[int], info: dict[str, Any], reward: float, terminated: bool,
                 truncated: bool) -> None:
        """Append a turn and the env block the step answered it with (`info` of one env); on the last
        step, record the outcome."""
        env_ids = list(info["env_token_ids"])
        self.ids += [int(t) for t in turn] + env_ids
        self.action_mask += [1] * len(turn) + [0] * len(env_ids)
        self.turns = int(info["turn"])
        self.action_errors += info["action_error"] is not None
        if terminated or truncated:
            self.reward, self.truncated = float(reward), bool(truncated)
            self.problem_id = str(info["problem_id"])
            self.correct, self.over_budget = bool(info["correct"]), bool(info["over_budget"])
            self.cost_usd = float(info["cost_usd"])
            self.calls = {name: int(count) for name, count in info["calls"].items() if not name.startswith("_")}


def sub_env_info(info: dict[str, Any], i: int) -> dict[str, Any]:
    """Sub-env `i`'s share of a vector env's step info, as one env's info reads (what `Episode` uses)."""
    one = {key: info[key][i] for key in _STEP_KEYS}
    one["calls"] = {name: counts[i] for name, counts in info["calls"].items() if not name.startswith("_")}
    return one


@dataclass
class RolloutTiming:
    gen_s: float = 0.0
    env_s: float = 0.0
    gen_tokens: int = 0


def play(vec_env: Any, generator: Any, *, seed: int, max_new_tokens: int, temperature: float = 1.0,
         top_p: float = 1.0, pins: Sequence[dict[str, Any]] | None = None) -> tuple[list[Episode], RolloutTiming]:
    """Play one episode per sub-env of `vec_env`. `pins` (one `reset` options dict per sub-env, e.g.
    `{"problem_id": ..., "budget": "low"}`) fixes problems and budgets, for evaluation."""
    timing = RolloutTiming()
    n = vec_env.num_envs
    obs, info = vec_env.reset(seed=seed, options=pins)
    episodes = [Episode.begin(p, b) for p, b in zip(info["env_token_ids"], info["budget_mode"])]
    live = [True] * n
    step = 0
    while any(live):
        rows = [i for i in range(n) if live[i]]
        start = time.perf_counter()
        gens = generator.generate([obs[i] for i in rows], max_new_tokens=max_new_tokens, temperature=temperature,
                                  top_p=top_p, seed=seed * 1000 + step)
        timing.gen_s += time.perf_counter() - start
        actions = [np.zeros(0, dtype=np.int64) for _ in range(n)]
        for i, gen in zip(rows, gens):
            actions[i] = np.asarray(gen.token_ids, dtype=np.int64)
            episodes[i].gen_logprobs += gen.logprobs
            timing.gen_tokens += len(gen.token_ids)
        start = time.perf_counter()
        obs, rewards, terminated, truncated, info = vec_env.step(tuple(actions))
        timing.env_s += time.perf_counter() - start
        for i in rows:
            episodes[i].add_step(actions[i], sub_env_info(info, i), rewards[i], terminated[i], truncated[i])
            live[i] = not (terminated[i] or truncated[i])
        step += 1
    return episodes, timing


def check_turn_budget(tokenizer: Any, expert_names: Sequence[str], max_new_tokens: int, query: str = "") -> None:
    """Raise ValueError unless `max_new_tokens` holds a call turn `<call expert="NAME">query</call>` to
    every expert of the roster (with a one-character query when `query` is empty): a smaller turn
    budget would make some expert impossible to call, silently, and RL could never learn to ask it."""
    query = query or "?"
    need = {name: len(tokenizer.encode(f'<call expert="{name}">{query}</call>', add_special_tokens=False))
            for name in expert_names}
    name = max(need, key=need.get)
    if max_new_tokens < need[name]:
        raise ValueError(f"max_new_tokens={max_new_tokens} cannot hold a call turn: calling {name} with the query "
                         f"{query!r} takes {need[name]} tokens; set --max-new-tokens {need[name]} or more")


def collate(episodes: Sequence[Episode], pad_id: int, device: Any = None):
    """Right-padded `ids`, `action_mask`, `attention_mask` tensors `[B, L]` and `scores` `[B]`."""
    import torch

    length = max(len(e.ids) for e in episodes)
    ids = torch.full((len(episodes), length), pad_id, dtype=torch.long)
    action_mask = torch.zeros((len(episodes), length), dtype=torch.float32)
    attention_mask = torch.zeros((len(episodes), length), dtype=torch.long)
    for row, e in enumerate(episodes):
        ids[row, : len(e.ids)] = torch.as_tensor(e.ids, dtype=torch.long)
        action_mask[row, : len(e.ids)] = torch.as_tensor(e.action_mask, dtype=torch.float32)
        attention_mask[row, : len(e.ids)] = 1
    scores = torch.as_tensor([e.reward for e in episodes], dtype=torch.float32)
    return {k: v.to(device) if device is not None else v for k, v in
            dict(ids=ids, action_mask=action_mask, attention_mask=attention_mask, scores=scores).items()}


def summarize_episodes(episodes: Sequence[Episode], prefix: str = "env") -> dict[str, float]:
    """Mean reward, accuracy, cost, expert-call ratio and well-formed turn rate (`report.episode_stats`),
    overall and by budget, as `<prefix>/<metric>[/<budget>]` log keys."""
    out: dict[str, float] = {}
    groups: dict[str, list[dict[str, Any]]] = {"": [vars(e) for e in episodes]}
    for row in groups[""]:
        groups.setdefault(row["budget"], []).append(row)
    for budget, group in groups.items():
        suffix = f"/{budget}" if budget else ""
        stats = episode_stats(group)
        out[f"{prefix}/reward{suffix}"] = stats["mean_reward"]
        out[f"{prefix}/accuracy{suffix}"] = stats["accuracy"]
        out[f"{prefix}/mean_cost_usd{suffix}"] = stats["mean_cost_usd"]
        out[f"{prefix}/expert_call_ratio{suffix}"] = stats["expert_call_ratio"]
        out[f"{prefix}/well_formed_rate{suffix}"] = well_formed_rate(group)
    return out

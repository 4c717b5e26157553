"""Episodes of a token-mode `CORLMathVectorEnv` played by a generator, as trajectories for PPO.

One call plays one episode per sub-env, all in lockstep: each step generates the turns of the live
episodes in one batched call, then steps the vector env once (all expert calls concurrent). The
trajectory is built from ids only, never from text: `prompt | turn | env block | turn | ...`, where the
prompt and env blocks come from `info["env_token_ids"]` and each turn is the generated ids exactly as
they were sent to the env (the env appends them verbatim). `action_mask` is 1 exactly on turn ids.

A sub-env whose episode ended is auto-reset by the vector env on the next step (Gymnasium's NEXT_STEP
mode); its later steps get an empty action and are ignored (they cost nothing: no call is made).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np


@dataclass
class Episode:
    """One finished episode: the trajectory ids, the controller mask, the final reward and outcome."""

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
    prompts, budgets = list(info["env_token_ids"]), list(info["budget_mode"])
    episodes = [Episode(list(p), [0] * len(p), budget=str(b)) for p, b in zip(prompts, budgets)]
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
            _extend(episodes[i], actions[i], info, i, rewards[i], terminated[i] or truncated[i], truncated[i])
            live[i] = not (terminated[i] or truncated[i])
        step += 1
    return episodes, timing


def _extend(episode: Episode, turn: np.ndarray, info: dict[str, Any], i: int, reward: float, done: bool,
            truncated: bool) -> None:
    env_ids = list(info["env_token_ids"][i])
    episode.ids += [int(t) for t in turn] + env_ids
    episode.action_mask += [1] * len(turn) + [0] * len(env_ids)
    episode.turns = int(info["turn"][i])
    episode.action_errors += info["action_error"][i] is not None
    if done:
        episode.reward, episode.truncated = float(reward), bool(truncated)
        episode.problem_id = str(info["problem_id"][i])
        episode.correct, episode.over_budget = bool(info["correct"][i]), bool(info["over_budget"][i])
        episode.cost_usd = float(info["cost_usd"][i])
        episode.calls = {name: int(counts[i]) for name, counts in info["calls"].items() if not name.startswith("_")}


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
    """Mean reward, accuracy, cost, expert-call ratio and well-formed turn rate, overall and by budget."""
    out: dict[str, float] = {}
    groups = {"": list(episodes)}
    for e in episodes:
        groups.setdefault(e.budget, []).append(e)
    for budget, group in groups.items():
        suffix = f"/{budget}" if budget else ""
        n = max(len(group), 1)
        turns = max(sum(e.turns for e in group), 1)
        out[f"{prefix}/reward{suffix}"] = sum(e.reward for e in group) / n
        out[f"{prefix}/accuracy{suffix}"] = sum(e.correct for e in group) / n
        out[f"{prefix}/mean_cost_usd{suffix}"] = sum(e.cost_usd for e in group) / n
        out[f"{prefix}/expert_call_ratio{suffix}"] = sum(any(e.calls.values()) for e in group) / n
        out[f"{prefix}/well_formed_rate{suffix}"] = 1.0 - sum(e.action_errors for e in group) / turns
    return out

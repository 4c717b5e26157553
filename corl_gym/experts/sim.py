"""Backend `sim`: simulated experts, deterministic per (problem id, expert name, seed).

Decisions:

- Difficulty. A problem's difficulty is its level 1-5 (MATH levels; the synthetic generator uses the
  same scale). Without a level it comes from the dataset name (or the id prefix): `amc*` -> 6,
  `aime*` -> 7 (harder than any MATH level), anything else -> 3. MATH's "Level ?" (0) counts as 3.
- Accuracy. Each entry gives an accuracy profile: `accuracy: {1: 0.93, ..., 5: 0.50, 6: ..., 7: ...}`
  (difficulties not listed take the nearest listed one), or `skill` (the logit of accuracy at
  difficulty 3) with `slope` (logit drop per difficulty step, default 0.6).
- Correlated failures. Every problem has a latent ease z_p ~ N(0, 1) drawn from (seed, problem id),
  shared by all experts; expert e draws its own noise e_pe ~ N(0, 1) from (seed, problem id, e). With
  u = sqrt(c) z_p + sqrt(1 - c) e_pe (c = the entry's `correlation`, default 0.5), e is right iff
  Phi(u) > 1 - accuracy(difficulty). u is standard normal, so P(right | difficulty) is exactly the
  profile's accuracy, while two experts' u are correlated by sqrt(c_e c_f): a problem that is hard for
  gpt-4.1-nano tends to be hard for o3 too, as with real models.
- Tokens. Completion tokens are log-normal: median `completion_tokens` at difficulty 3, times
  exp(`completion_slope` * (difficulty - 3)), spread `completion_sigma`. o3's median is in the
  thousands because its reasoning tokens are billed as output. Prompt tokens are estimated from the
  query (about 4 characters per token plus a chat overhead, `prompt_overhead`).
- Reply. A short worked-style text ending in `\\boxed{}`: the gold answer when right, a plausible wrong
  value (`wrong_answers.wrong_answer`) when wrong. The sub-query's wording does not change correctness:
  the simulator cannot read it, so asking the same expert twice gives the same answer.
- Latency is reported (`latency_s` = `latency_base_s` + completion tokens / `tokens_per_s`) but not
  slept unless `simulate_latency: true`.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from typing import Any

from corl_gym.data import Problem
from corl_gym.experts import stable_random
from corl_gym.experts.base import (
    CHAT_OVERHEAD_TOKENS,
    Expert,
    ExpertReply,
    ExpertSpec,
    boxed_reply,
    estimate_prompt_tokens,
)
from corl_gym.experts.wrong_answers import strip_answer, wrong_answer

DIFFICULTY_DEFAULT = 3
DIFFICULTY_AMC = 6
DIFFICULTY_AIME = 7
_NAMED_DIFFICULTIES = {"amc": DIFFICULTY_AMC, "aime": DIFFICULTY_AIME}


def difficulty(problem: Problem) -> int:
    """The simulator's difficulty of `problem` (see the module docstring)."""
    if problem.level is not None and 1 <= int(problem.level) <= 5:
        return int(problem.level)
    name = (problem.dataset or problem.id.rsplit("-", 1)[0]).lower()
    for prefix, value in _NAMED_DIFFICULTIES.items():
        if name.startswith(prefix):
            return value
    return DIFFICULTY_DEFAULT


def accuracy_profile(options: dict[str, Any], where: str) -> Callable[[int], float]:
    """Build difficulty -> accuracy from an entry's options; `where` names the entry in errors."""
    if "accuracy" in options:
        table = _parse_table(options["accuracy"], where)
        keys = sorted(table)
        return lambda d: table[min(keys, key=lambda k: (abs(k - d), k))]
    if "skill" in options:
        skill, slope = float(options["skill"]), float(options.get("slope", 0.6))
        return lambda d: 1.0 / (1.0 + math.exp(-(skill - slope * (d - DIFFICULTY_DEFAULT))))
    raise ValueError(f"{where}: a sim expert needs `accuracy` (difficulty -> probability) or `skill`")


def _parse_table(raw: Any, where: str) -> dict[int, float]:
    if not isinstance(raw, dict) or not raw:
        raise ValueError(f"{where}: `accuracy` must be a non-empty mapping difficulty -> probability")
    table = {}
    for key, value in raw.items():
        level = _NAMED_DIFFICULTIES.get(str(key).lower()) or _as_level(key, where)
        if not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
            raise ValueError(f"{where}: accuracy for difficulty {key!r} must be in [0, 1], got {value!r}")
        table[level] = float(value)
    return table


def _as_level(key: Any, where: str) -> int:
    try:
        level = int(key)
    except (TypeError, ValueError):
        level = 0
    if not 1 <= level <= 7:
        raise ValueError(f"{where}: accuracy key {key!r} must be a difficulty 1-7, 'amc' or 'aime'")
    return level


class SimExpert(Expert):
    """A simulated expert; see the module docstring for the model."""

    def __init__(self, spec: ExpertSpec, *, seed: int = 0, **_: Any):
        super().__init__(spec)
        where = f"sim expert {spec.name!r}"
        opts = spec.options
        self.seed = int(seed)
        self.accuracy = accuracy_profile(opts, where)
        self.correlation = float(opts.get("correlation", 0.5))
        if not 0.0 <= self.correlation <= 1.0:
            raise ValueError(f"{where}: correlation must be in [0, 1], got {self.correlation}")
        self.completion_median = float(opts.get("completion_tokens", 400))
        self.completion_sigma = float(opts.get("completion_sigma", 0.35))
        self.completion_slope = float(opts.get("completion_slope", 0.2))
        self.prompt_overhead = int(opts.get("prompt_overhead", CHAT_OVERHEAD_TOKENS))
        self.tokens_per_s = float(opts.get("tokens_per_s", 80.0))
        self.latency_base_s = float(opts.get("latency_base_s", 0.4))
        self.simulate_latency = bool(opts.get("simulate_latency", False))

    def correct_on(self, problem: Problem) -> bool:
        """Whether this expert answers `problem` correctly (the whole simulated outcome)."""
        z = stable_random.normal(self.seed, "latent-ease", problem.id)
        noise = stable_random.normal(self.seed, "expert-noise", problem.id, self.name)
        u = math.sqrt(self.correlation) * z + math.sqrt(1.0 - self.correlation) * noise
        return u > stable_random.phi_inv(1.0 - self.accuracy(difficulty(problem)))

    def completion_tokens(self, problem: Problem) -> int:
        log_scale = self.completion_slope * (difficulty(problem) - DIFFICULTY_DEFAULT)
        draw = stable_random.normal(self.seed, "completion-tokens", problem.id, self.name)
        return max(1, round(self.completion_median * math.exp(log_scale + self.completion_sigma * draw)))

    def _reply(self, query: str, problem: Problem) -> ExpertReply:
        completion = self.completion_tokens(problem)
        prompt = estimate_prompt_tokens(query, self.prompt_overhead)
        if self.correct_on(problem):
            answer = strip_answer(problem.answer)
        else:
            answer = wrong_answer(problem.answer, self.seed, problem.id, self.name)
        steps = 2 + completion // 300
        return ExpertReply(
            text=boxed_reply(answer, self.spec.model, steps),
            prompt_tokens=prompt,
            completion_tokens=completion,
            cost_usd=self.spec.cost(prompt, completion),
            latency_s=self.latency_base_s + completion / self.tokens_per_s,
        )

    def max_cost(self, query: str, problem: Problem) -> float:
        """Exact: the simulated call's cost is known before it is made."""
        return self._reply(query, problem).cost_usd

    def call(self, query: str, problem: Problem) -> ExpertReply:
        reply = self._reply(query, problem)
        if self.simulate_latency:
            time.sleep(reply.latency_s)
        return reply

    async def acall(self, query: str, problem: Problem) -> ExpertReply:
        reply = self._reply(query, problem)  # pure CPU, microseconds: no thread needed
        if self.simulate_latency:
            await asyncio.sleep(reply.latency_s)
        return reply

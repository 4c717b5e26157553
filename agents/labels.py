"""Labelled training problems for learned routers: what each choice (answering itself, or asking one
expert with the whole problem) would have earned on each problem.

Labels come from actually calling the pool's controller and experts and checking their answers, so
they are cheap and exact with simulated or replayed pools, and cost real money with a live pool.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
from tqdm import tqdm

from corl_gym import verify
from corl_gym.data import Problem
from corl_gym.envs.features import problem_features
from corl_gym.experts import Pool
from corl_gym.protocol import stated_answer

SELF = "self"


@dataclass
class ChoiceLabels:
    """Row i is problem i; column j is choice j (`choices[0]` is answering itself)."""

    choices: list[str]
    correct: np.ndarray  # bool [n, K + 1]
    cost: np.ndarray  # USD [n, K + 1]
    features: np.ndarray  # float32 [n, D]

    def rewards(self, threshold_usd: float) -> np.ndarray:
        """The hard-gate reward of every choice on every problem at a dollar threshold."""
        return self.correct & (self.cost <= threshold_usd + 1e-12)


def label_choices(
    pool: Pool,
    problems: Sequence[Problem],
    features: Callable[[Problem], np.ndarray] = problem_features,
    progress: bool = False,
) -> ChoiceLabels:
    choices = [SELF, *pool.expert_names()]
    experts = [pool.controller, *pool.experts.values()]
    correct = np.zeros((len(problems), len(choices)), dtype=bool)
    cost = np.zeros((len(problems), len(choices)), dtype=np.float64)
    for i, problem in enumerate(tqdm(problems, desc="label", unit="problem", disable=not progress)):
        for j, expert in enumerate(experts):
            reply = pool.ask(expert, problem.problem, problem)  # never raises; a failure is labelled wrong
            cost[i, j] = 0.0 if j == 0 else reply.cost_usd  # the controller's own answer is free
            if reply.error is None:
                verdict = verify.check(stated_answer(reply.text), problem.answer)
                correct[i, j] = verdict is verify.Verdict.CORRECT
    rows = np.stack([np.asarray(features(p), dtype=np.float32).reshape(-1) for p in problems]) if problems else np.zeros((0, 0))
    return ChoiceLabels(choices, correct, cost, rows)

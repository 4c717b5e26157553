"""Labelled training problems for learned routers: what each choice (answering itself, or asking one
expert with the whole problem) would have earned on each problem, and (`plan_labels`) what each plan
(asking a set of experts, then submitting the plurality of the answers) would have earned.

Labels come from actually calling the pool's controller and experts and checking their answers, so
they are cheap and exact with simulated or replayed pools, and cost real money with a live pool. Plans
cost nothing more: their answers are the single choices' answers, grouped as `CORL-Routing-v1` and the
aggregating routers group them (`corl_gym.answer_groups`).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from tqdm import tqdm

from corl_gym import verify
from corl_gym.agents.router_base import SELF
from corl_gym.answer_groups import AnswerGroups, reply_answer
from corl_gym.budget import within_budget
from corl_gym.data import Problem
from corl_gym.envs.features import problem_features
from corl_gym.experts import Pool
from corl_gym.protocol import stated_answer


@dataclass
class ChoiceLabels:
    """Row i is problem i; column j is choice j (`choices[0]` is answering itself)."""

    choices: list[str]
    correct: np.ndarray  # bool [n, K + 1]
    cost: np.ndarray  # USD [n, K + 1]
    features: np.ndarray  # float32 [n, D]
    answers: list[list[str | None]] = field(default_factory=list)  # [n][K + 1]: the final answer stated, or None

    def rewards(self, threshold_usd: float) -> np.ndarray:
        """The hard-gate reward of every choice on every problem at a dollar threshold."""
        return self.correct & within_budget(self.cost, threshold_usd)


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
    answers: list[list[str | None]] = []
    for i, problem in enumerate(tqdm(problems, desc="label", unit="problem", disable=not progress)):
        answers.append([])
        for j, expert in enumerate(experts):
            reply = pool.ask(expert, problem.problem, problem)  # never raises; a failure is labelled wrong
            cost[i, j] = 0.0 if j == 0 else reply.cost_usd  # the controller's own answer is free
            answers[i].append(reply_answer(reply))
            if reply.error is None:
                verdict = verify.check(stated_answer(reply.text), problem.answer)
                correct[i, j] = verdict is verify.Verdict.CORRECT
    rows = (np.stack([np.asarray(features(p), dtype=np.float32).reshape(-1) for p in problems]) if problems
            else np.zeros((0, 0)))
    return ChoiceLabels(choices, correct, cost, rows, answers)


MAX_PLAN_EXPERTS = 5


def plan_labels(labels: ChoiceLabels,
                max_experts: int = MAX_PLAN_EXPERTS) -> tuple[list[tuple[str, ...]], np.ndarray, np.ndarray]:
    """(plans, correct [n, P], cost [n, P]) for every plan of at most `max_experts` experts: ask them,
    cheapest first (by mean labelled cost), then submit the plurality of their answers and the
    controller's own. The empty plan answers alone; a one-expert plan submits that expert's answer when it
    states one (it is the dearer of the two), else the controller's."""
    order = sorted(range(1, len(labels.choices)), key=lambda j: labels.cost[:, j].mean())
    sizes = range(min(max_experts, len(order)) + 1)
    subsets = [combo for size in sizes for combo in itertools.combinations(order, size)]
    correct = np.zeros((len(labels.answers), len(subsets)), dtype=bool)
    cost = np.zeros(correct.shape, dtype=np.float64)
    for i, answers in enumerate(labels.answers):
        for p, subset in enumerate(subsets):
            groups = AnswerGroups()
            groups.add(0, answers[0], 0.0)
            for j in subset:
                groups.add(j, answers[j], labels.cost[i, j])
            best = groups.plurality()
            correct[i, p] = best is not None and labels.correct[i, best[0]]
            cost[i, p] = labels.cost[i, list(subset)].sum()
    return [tuple(labels.choices[j] for j in subset) for subset in subsets], correct, cost

"""Routers fitted on labelled training problems (`agents.labels`): `best-fixed`, `threshold`, `knn`.

Each picks per budget: it is fitted once and serves every budget mode of the pool (a dollar budget the
pool does not name is handled from the labels at that threshold). `best-fixed` and `threshold` make at
most one call, like the scripted baselines; `knn` may also aggregate.

- `best-fixed`: the single choice (answer itself, or one expert) with the best mean training reward at
  each budget; ties go to the cheaper choice. The strongest non-adaptive router.
- `threshold`: a difficulty score, the predicted probability that the controller's own answer is wrong
  (logistic regression on the problem features), and a cut-off per budget: above it, ask that budget's
  best affordable expert. Cut-offs maximise the training reward.
- `knn`: the k nearest training problems in standardised feature space vote: each plan's mean training
  reward among them at the episode's threshold, shrunk halfway to its mean over all training problems
  (with dozens of plans, the best raw mean of 15 neighbours is mostly noise); the best wins, ties to the
  cheaper. A plan asks a set of
  experts (up to `labels.MAX_PLAN_EXPERTS`; none: answer alone), then submits the plurality of the answers
  (`agents.aggregate_routers.PlanRouter`), so a single call, a vote of several experts or answering alone
  are all choices.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from corl_gym.agents.aggregate_routers import PlanRouter
from corl_gym.agents.labels import ChoiceLabels, label_choices, plan_labels
from corl_gym.agents.router_base import Router
from corl_gym.budget import within_budget
from corl_gym.data import Problem
from corl_gym.envs.features import problem_features
from corl_gym.experts import Pool


class LearnedRouter(Router):
    """A router with `fit(pool, problems)`; acting before fitting is an error that says so."""

    labels: ChoiceLabels | None = None

    def fit(self, pool: Pool, problems: Sequence[Problem], progress: bool = False) -> LearnedRouter:
        if not problems:
            raise ValueError(f"{self.name} needs training problems to fit on")
        self.labels = label_choices(pool, problems, progress=progress)
        self._fit(self.labels, pool.budgets)
        return self

    def _fit(self, labels: ChoiceLabels, budgets: dict[str, float]) -> None:
        pass

    def choose(self, info: dict[str, Any]) -> str:
        if self.labels is None:
            raise RuntimeError(f"router {self.name!r} is not fitted: call fit(pool, train_problems) first")
        return self.labels.choices[self._choice_index(info)]

    def _choice_index(self, info: dict[str, Any]) -> int:
        raise NotImplementedError

    def _features(self) -> np.ndarray:
        return np.asarray(problem_features(self.view.problem), dtype=np.float32)


def best_choice(rewards: np.ndarray, cost: np.ndarray) -> int:
    """The column with the best mean reward, the cheapest among ties."""
    return best_of(rewards.mean(axis=0), cost.mean(axis=0))


def best_of(scores: np.ndarray, costs: np.ndarray) -> int:
    """The index of the best score, the cheapest among ties."""
    best = np.flatnonzero(np.isclose(scores, scores.max()))
    return int(best[np.argmin(costs[best])])


class BestFixed(LearnedRouter):
    name = "best-fixed"

    def _choice_index(self, info: dict[str, Any]) -> int:
        labels = self.labels
        return best_choice(labels.rewards(info["threshold_usd"]), labels.cost)


class ThresholdRouter(LearnedRouter):
    name = "threshold"

    def _fit(self, labels: ChoiceLabels, budgets: dict[str, float]) -> None:
        x, self._mean, self._std = _standardise(labels.features)
        self._weights = _logistic_regression(x, (~labels.correct[:, 0]).astype(np.float64))
        self._scores = _sigmoid(_with_bias(x) @ self._weights)
        self._rules: dict[float, tuple[float, int]] = {}

    def _rule(self, threshold: float) -> tuple[float, int]:
        """(cut-off, expert column) for a threshold, chosen on the training labels and memoised."""
        if threshold not in self._rules:
            labels, scores = self.labels, self._scores
            rewards = labels.rewards(threshold)
            expert = 1 + best_choice(rewards[:, 1:], labels.cost[:, 1:])
            best = (np.inf, expert, rewards[:, 0].mean())
            for cut in np.unique(np.quantile(scores, np.linspace(0, 1, 41))):
                mean = np.where(scores > cut, rewards[:, expert], rewards[:, 0]).mean()
                if mean > best[2] + 1e-12:
                    best = (cut, expert, mean)
            self._rules[threshold] = best[:2]
        return self._rules[threshold]

    def _choice_index(self, info: dict[str, Any]) -> int:
        cut, expert = self._rule(info["threshold_usd"])
        x = (self._features() - self._mean) / self._std
        score = _sigmoid(np.append(x, 1.0) @ self._weights)
        return expert if score > cut else 0


class KNNRouter(LearnedRouter, PlanRouter):
    name = "knn"

    def __init__(self, k: int = 15):
        self.k = k

    def _fit(self, labels: ChoiceLabels, budgets: dict[str, float]) -> None:
        self._x, self._mean, self._std = _standardise(labels.features)
        self.plans, self._plan_correct, self._plan_cost = plan_labels(labels)

    def plan(self, info: dict[str, Any]) -> tuple[str, ...]:
        if self.labels is None:
            raise RuntimeError(f"router {self.name!r} is not fitted: call fit(pool, train_problems) first")
        x = (self._features() - self._mean) / self._std
        distance = ((self._x - x) ** 2).sum(axis=1)
        nearest = np.argsort(distance, kind="stable")[: self.k]
        rewards = self._plan_correct & within_budget(self._plan_cost, info["threshold_usd"])
        shrunk = (rewards[nearest].mean(axis=0) + rewards.mean(axis=0)) / 2
        return self.plans[best_of(shrunk, self._plan_cost[nearest].mean(axis=0))]


def _standardise(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    mean, std = x.mean(axis=0), x.std(axis=0)
    std = np.where(std > 1e-8, std, 1.0)  # constant features stay at 0 instead of dividing by 0
    return (x - mean) / std, mean, std


def _with_bias(x: np.ndarray) -> np.ndarray:
    return np.hstack([x, np.ones((len(x), 1))])


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -30, 30)))


def _logistic_regression(x: np.ndarray, y: np.ndarray, l2: float = 1e-2, steps: int = 500,
                         lr: float = 0.5) -> np.ndarray:
    """Full-batch gradient descent on the L2-regularised log loss (few features, few thousand rows)."""
    xb = _with_bias(x)
    w = np.zeros(xb.shape[1])
    for _ in range(steps):
        gradient = xb.T @ (_sigmoid(xb @ w) - y) / len(y) + l2 * np.append(w[:-1], 0.0)
        w -= lr * gradient
    return w


LEARNED = {"best-fixed": BestFixed, "threshold": ThresholdRouter, "knn": KNNRouter}

"""The router interface: the `Router` base class, what a router reads of the env (a `RouterView`), how it
seeds itself, and the actions it returns. Every router module builds on this one and nothing here imports
a router, so the router modules import one way: this module <- scripted, aggregating, learned routers <-
the registry (`agents.routers`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from corl_gym.budget import within_budget
from corl_gym.envs.router_view import RouterView
from corl_gym.experts import stable_random
from corl_gym.protocol import AnswerAction, CallAction, stated_answer

SELF = "self"  # the choice of answering with the controller's own answer, beside the experts' names


class Router:
    """Base class of the policies that act in `CORL-Math-v0` without being trained there: scripted,
    aggregating and fitted routers, and LLM controllers (`ChatController`).

    **Protocol.** `reset(env, info)` at the start of each episode (`env` the `CORLMathEnv`, wrapped or not,
    just reset; `info` its reset info), then `act(observation, info)` each turn, which returns the action
    for `env.step`: a parsed `corl_gym.protocol` action (`CallAction`, `AnswerAction`) from the routers
    here, text from `ChatController`.

    **What a router reads.** `reset` takes the env's `RouterView` (`self.view`), and a router reads the
    episode through it and the step's `info` alone, never through the env: the problem (its gold answer
    is the oracle's alone), the latest expert reply, the expert names and each one's expected cost for
    a query, `max_turns` and `verify_timeout`; it may ask for the controller's own answer
    (`view.controller_reply()`, never charged), the oracle may `peek` at the experts' replies, and an LLM
    controller reports its own tokens' cost (`view.charge_controller`). `RouterView`'s docstring is the
    contract. The budget, the spend, the turn and the calls are in `info`.

    **Seeding.** `reset` gives every episode a fresh `self.rng` (a NumPy Generator) drawn from (`seed`,
    problem id, budget mode, threshold) by `episode_rng`. A router that makes random choices takes `seed`
    in its constructor, keeps it in `self.seed`, calls `super().reset` and draws only from `self.rng`:
    then an episode's choices never depend on the episodes played before it, and a benchmark that is
    interrupted and resumed gives exactly the rows of one that ran straight through.

    The single-call routers override `choose(info)` (`SELF` or an expert name): the base `act` asks that
    expert with the whole problem, then answers with the reply's stated answer (its own answer when the
    call failed)."""

    name = "router"
    seed = 0

    def reset(self, env: Any, info: dict[str, Any]) -> None:
        self.view = RouterView.of(env)
        self.called = False
        self.rng = episode_rng(self.seed, info["problem_id"], info["budget_mode"], info["threshold_usd"])

    def act(self, observation: str, info: dict[str, Any]) -> str | CallAction | AnswerAction:
        if self.called:
            return self._answer_from_reply()
        choice = self.choose(info)
        if choice == SELF:
            return answer_action(self.own_answer())
        self.called = True
        return call_action(choice, self.view.problem.problem)

    def choose(self, info: dict[str, Any]) -> str:
        """`SELF` or an expert name."""
        raise NotImplementedError

    def own_answer(self) -> str:
        """The controller's own answer; "" when its call fails (the pool logged the failure)."""
        reply = self.view.controller_reply()
        return stated_answer(reply.text) if reply.error is None else ""

    def _answer_from_reply(self) -> AnswerAction:
        reply = self.view.last_reply
        if reply is None or reply.error is not None:
            return answer_action(self.own_answer())
        return answer_action(stated_answer(reply.text))

    def expected_costs(self) -> dict[str, float]:
        """Expert name -> expected cost of asking it the whole problem, in pool order."""
        return self.view.expected_costs()

    def affordable(self, info: dict[str, Any]) -> dict[str, float]:
        """Expected cost of each expert whose expected cost fits the episode's threshold."""
        return affordable_experts(self.view, info["threshold_usd"])


def affordable_experts(env: Any, threshold_usd: float) -> dict[str, float]:
    """Expert name -> expected cost on the current problem of `env` (a `CORLMathEnv`, wrapped or not, or its
    `RouterView`), for the experts whose expected cost is within `threshold_usd` (`budget.within_budget`):
    the affordability test of `cheapest-affordable`, `best-affordable` and SFT's `--teachers-within-budget`."""
    costs = RouterView.of(env).expected_costs()
    return {name: cost for name, cost in costs.items() if within_budget(cost, threshold_usd)}


def episode_rng(seed: int, problem_id: str, budget: str, threshold_usd: float) -> np.random.Generator:
    """The random generator of one episode, fixed by its arguments alone (a stable hash, the same on every
    machine and process)."""
    stable = stable_random.rng(seed, problem_id, budget, repr(float(threshold_usd)))
    return np.random.default_rng(stable.getrandbits(64))


def answer_action(value: str) -> AnswerAction:
    """Answer `value` (boxed); the env takes it as is, whatever tags `value` holds."""
    return AnswerAction(f"\\boxed{{{value}}}")


def call_action(expert: str, query: str) -> CallAction:
    """Send `query` to `expert`; the env takes it as is, whatever tags `query` holds."""
    return CallAction(expert, query)

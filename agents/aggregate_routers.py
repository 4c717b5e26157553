"""Aggregating routers: several expert calls per episode in `CORL-Math-v0`, then one of the answers seen.

They offer a text-env episode the choices `CORL-Routing-v1` offers a learner: answer with any answer bought
so far, or with the plurality. Answers are grouped by `corl_gym.answer_groups.AnswerGroups`, the grouping
`CORL-Routing-v1` and the fitted routers' labels use: the controller's own answer is the first (free), each
expert's reply adds its final answer (a reply with no `\\boxed{}` adds none), the plurality is the largest
group, ties to the group holding the answer that cost the most.

- `vote`: ask every expert whose expected cost fits the remaining budget, cheapest first, while the budget
  allows; then submit the plurality.
- `cascade-agree`: the same order, but stop at the first agreement of two answers (the controller's own
  included) and submit it; with no agreement once the budget or the turns run out, submit the plurality
  (ties: the dearest answer). Unlike `cascade`, a reply that states no answer is not a vote and the
  fallback is the plurality, not the latest reply.
- `PlanRouter`, the base of `knn`: ask a set of experts chosen when the episode starts, cheapest first,
  then submit the plurality.

Every router leaves itself the turn to answer: it stops asking one turn before the env's `max_turns`.
They keep no state from one episode to the next (no random numbers at all), so a resumed benchmark gives
the rows an uninterrupted one gives.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from corl_gym.agents.router_base import SELF, Router, answer_action, call_action
from corl_gym.answer_groups import AnswerGroups, reply_answer
from corl_gym.budget import within_budget
from corl_gym.protocol import AnswerAction, CallAction


class AggregatingRouter(Router):
    """Base class: `next_call(info)` names the expert to ask next (None: stop), `final_answer()` what to
    submit (default: the plurality). `self.answers` holds the episode's answers, keyed by `SELF` or the
    expert's name."""

    def reset(self, env: Any, info: dict[str, Any]) -> None:
        super().reset(env, info)
        own = self.view.controller_reply()  # never raises; a failure states none
        self.answers = AnswerGroups(timeout=self.view.verify_timeout)
        self.answers.add(SELF, reply_answer(own), 0.0)
        self.asked: list[str] = []
        costs = self.expected_costs()
        self.cheapest_first = sorted(costs, key=costs.get)
        self.costs = costs

    def act(self, observation: str, info: dict[str, Any]) -> CallAction | AnswerAction:
        reply = self.view.last_reply
        if self.asked and reply is not None and reply.error is None:  # a failed call adds nothing
            self.answers.add(self.asked[-1], reply_answer(reply), reply.cost_usd)
        expert = None if info["turn"] >= self.view.max_turns - 1 else self.next_call(info)
        if expert is None:
            return answer_action(self.final_answer())
        self.asked.append(expert)
        return call_action(expert, self.view.problem.problem)

    def next_call(self, info: dict[str, Any]) -> str | None:
        raise NotImplementedError

    def final_answer(self) -> str:
        return self.answers.plurality_answer()

    def next_affordable(self, info: dict[str, Any]) -> str | None:
        """The cheapest expert not asked yet, if its expected cost fits the remaining budget."""
        left = info["threshold_usd"] - info["cost_usd"]
        unasked = [name for name in self.cheapest_first if name not in self.asked]
        return unasked[0] if unasked and within_budget(self.costs[unasked[0]], left) else None


class Vote(AggregatingRouter):
    name = "vote"

    def next_call(self, info: dict[str, Any]) -> str | None:
        return self.next_affordable(info)


class CascadeAgree(AggregatingRouter):
    name = "cascade-agree"

    def next_call(self, info: dict[str, Any]) -> str | None:
        if max(self.answers.sizes(), default=0) >= 2:
            return None  # two answers agree: the plurality is that agreement
        return self.next_affordable(info)


class PlanRouter(AggregatingRouter):
    """Asks the experts `plan(info)` names when the episode starts, cheapest first, then submits the
    plurality (an empty plan answers alone)."""

    def reset(self, env: Any, info: dict[str, Any]) -> None:
        super().reset(env, info)
        self.queue: list[str] | None = None

    def next_call(self, info: dict[str, Any]) -> str | None:
        if self.queue is None:
            chosen = set(self.plan(info))
            self.queue = [name for name in self.cheapest_first if name in chosen]
        return self.queue.pop(0) if self.queue else None

    def plan(self, info: dict[str, Any]) -> Sequence[str]:
        raise NotImplementedError


AGGREGATING = {"vote": Vote, "cascade-agree": CascadeAgree}

"""Scripted single-call routers: fixed rules that answer alone or ask one expert, then answer, except
`cascade`, which escalates through the experts by price (`agents.routers` lists them all by name)."""

from __future__ import annotations

from typing import Any

from corl_gym import verify
from corl_gym.agents.router_base import SELF, Router, answer_action, call_action
from corl_gym.budget import within_budget
from corl_gym.protocol import AnswerAction, CallAction, stated_answer


class AlwaysSelf(Router):
    name = "always-self"

    def choose(self, info: dict[str, Any]) -> str:
        return SELF


class AlwaysExpert(Router):
    def __init__(self, expert: str):
        self.expert = expert
        self.name = f"always:{expert}"

    def reset(self, env: Any, info: dict[str, Any]) -> None:
        super().reset(env, info)
        names = self.view.expert_names
        if self.expert not in names:
            raise ValueError(f"unknown expert {self.expert!r}: this pool has {', '.join(names)}")

    def choose(self, info: dict[str, Any]) -> str:
        return self.expert


class RandomRouter(Router):
    name = "random"

    def __init__(self, seed: int = 0):
        self.seed = seed

    def choose(self, info: dict[str, Any]) -> str:
        options = [SELF, *self.view.expert_names]
        return options[int(self.rng.integers(len(options)))]


class CheapestAffordable(Router):
    name = "cheapest-affordable"

    def choose(self, info: dict[str, Any]) -> str:
        affordable = self.affordable(info)
        return min(affordable, key=affordable.get) if affordable else SELF


class BestAffordable(Router):
    name = "best-affordable"

    def choose(self, info: dict[str, Any]) -> str:
        affordable = self.affordable(info)
        return max(affordable, key=affordable.get) if affordable else SELF


class Cascade(Router):
    """Answer itself, then ask experts from the cheapest up while the answers so far disagree: stop at
    the first answer that agrees with an earlier one (self-consistency), or when the next expert is not
    affordable or turns run out; then answer with the latest answer."""

    name = "cascade"

    def reset(self, env: Any, info: dict[str, Any]) -> None:
        super().reset(env, info)
        costs = self.expected_costs()
        self.queue = sorted(costs, key=costs.get)
        self.answers = [self.own_answer()]

    def act(self, observation: str, info: dict[str, Any]) -> CallAction | AnswerAction:
        reply = self.view.last_reply
        if reply is not None and reply.error is None:
            self.answers.append(stated_answer(reply.text))
        latest = self.answers[-1]
        if len(self.answers) > 1 and any(verify.is_equivalent(latest, a) for a in self.answers[:-1]):
            return answer_action(latest)
        remaining = info["threshold_usd"] - info["cost_usd"]
        costs = self.expected_costs()
        while self.queue and not within_budget(costs[self.queue[0]], remaining):
            self.queue.pop(0)
        if not self.queue or info["turn"] >= self.view.max_turns - 1:
            return answer_action(latest)
        return call_action(self.queue.pop(0), self.view.problem.problem)


class Oracle(Router):
    """Reads the gold answer and peeks at every choice (`RouterView.peek`): see `agents.routers`."""

    name = "oracle"

    def choose(self, info: dict[str, Any]) -> str:
        if self._correct(self.own_answer()):
            return SELF
        correct = {}
        for name in self.view.expert_names:
            reply = self.view.peek(name)
            if reply.error is None and self._correct(stated_answer(reply.text)):
                correct[name] = reply.cost_usd
        within = {n: c for n, c in correct.items() if within_budget(c, info["threshold_usd"])}
        pick_from = within or correct
        return min(pick_from, key=pick_from.get) if pick_from else SELF

    def _correct(self, answer: str) -> bool:
        return verify.check(answer, self.view.problem.answer) is verify.Verdict.CORRECT

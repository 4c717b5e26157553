"""Baseline routers: scripted policies that act in `CORL-Math-v0`.

A router's action is a parsed `corl_gym.protocol` action (`CallAction`, `AnswerAction`), which the env
takes without re-parsing (in text and token mode alike), so a query or an answer that holds grammar tags
(an expert's `\\boxed{7</call>}`, a problem quoting `<answer>`) cannot break or redirect the turn. The
env appends the action's canonical text (`<call expert="NAME">query</call>`, `<answer>...</answer>`) to
the context, as if the router had written it.

The routers here make at most one expert call per episode; the aggregating ones (`agents.aggregate_routers`)
make several and submit one of the answers seen. Where a router answers itself, the answer comes from the
pool's `controller` entry (the controller model's own answer profile, free of charge), since no LLM is
plugged in. Routers read the text observation, so they run in text mode.

- `always-self`: answer without calling.
- `always:<expert>`: call that expert with the whole problem, answer with its boxed value.
- `random`: pick uniformly among answering itself and each expert (seeded per episode: `Router`).
- `cheapest-affordable`: call the cheapest expert whose expected cost fits the budget threshold; answer
  itself when none fits.
- `best-affordable`: call the most expensive expert (price as a proxy for quality) whose expected cost
  fits the threshold; answer itself when none fits.
- `cascade`: answer itself, then escalate through the experts by price while the answers disagree.
- `cascade-agree`, `vote`: several calls, then an answer seen so far (`agents.aggregate_routers`).
- `best-fixed`, `threshold`, `knn`: fitted on training problems (`agents.learned_routers`).
- `api:<entry>`: a prompted API model as the controller (`agents.api_controller`, not a router).
- `oracle`: reads the gold answer and peeks at every choice: the cheapest correct choice within budget,
  else the cheapest correct one, else answering itself for free. It maximises both reward and accuracy
  over single-call policies: an upper bound for benchmarks only. Peeking calls each expert once more, so
  use it with simulated or replayed pools, never with a paid live pool.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from corl_gym import verify
from corl_gym.experts import Expert, stable_random
from corl_gym.protocol import AnswerAction, CallAction, stated_answer

SELF = "self"


class Router:
    """Base class: `reset(env, info)` at the start of each episode, then `act(observation, info)`, which
    returns the action for `env.step` (a protocol action here; text from `ChatController`).

    Seeding: `reset` gives every episode a fresh `self.rng` (a NumPy Generator) drawn from (`seed`, problem
    id, budget mode, threshold) by `episode_rng`. A router that makes random choices takes `seed` in its
    constructor, keeps it in `self.seed`, calls `super().reset` and draws only from `self.rng`: then an
    episode's choices never depend on the episodes played before it, and a benchmark that is interrupted
    and resumed gives exactly the rows of one that ran straight through."""

    name = "router"
    seed = 0

    def reset(self, env: Any, info: dict[str, Any]) -> None:
        self.env = env.unwrapped
        self.called = False
        self.rng = episode_rng(self.seed, info["problem_id"], info["budget_mode"], info["threshold_usd"])

    def act(self, observation: str, info: dict[str, Any]) -> str | CallAction | AnswerAction:
        if self.called:
            return self._answer_from_reply()
        choice = self.choose(info)
        if choice == SELF:
            return answer_action(self.own_answer())
        self.called = True
        return call_action(choice, self.env.problem.problem)

    def choose(self, info: dict[str, Any]) -> str:
        """`SELF` or an expert name."""
        raise NotImplementedError

    def own_answer(self) -> str:
        """The controller's own answer; "" when its call fails."""
        problem = self.env.problem
        reply = self.env.pool.call_controller(problem.problem, problem)
        return stated_answer(reply.text) if reply.error is None else ""  # the pool logged the failure

    def _answer_from_reply(self) -> AnswerAction:
        reply = self.env.last_reply
        if reply is None or reply.error is not None:
            return answer_action(self.own_answer())
        return answer_action(stated_answer(reply.text))

    def experts(self) -> dict[str, Expert]:
        return self.env.pool.experts

    def expected_costs(self) -> dict[str, float]:
        query = self.env.problem.problem
        return {name: e.spec.expected_cost(query) for name, e in self.experts().items()}

    def affordable(self, info: dict[str, Any]) -> dict[str, float]:
        """Expected cost of each expert whose expected cost fits the episode's threshold."""
        return affordable_experts(self.env, info["threshold_usd"])


def affordable_experts(env: Any, threshold_usd: float) -> dict[str, float]:
    """Expert name -> expected cost on `env`'s current problem, for the experts whose expected cost fits
    `threshold_usd` (the affordability test of `cheapest-affordable`, `best-affordable` and SFT's
    `--teachers-within-budget`)."""
    query = env.unwrapped.problem.problem
    costs = {name: e.spec.expected_cost(query) for name, e in env.unwrapped.pool.experts.items()}
    return {name: cost for name, cost in costs.items() if cost <= threshold_usd}


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
        if self.expert not in self.env.pool.experts:
            raise ValueError(f"unknown expert {self.expert!r}: this pool has {', '.join(self.env.pool.experts)}")

    def choose(self, info: dict[str, Any]) -> str:
        return self.expert


class RandomRouter(Router):
    name = "random"

    def __init__(self, seed: int = 0):
        self.seed = seed

    def choose(self, info: dict[str, Any]) -> str:
        options = [SELF, *self.experts()]
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
        reply = self.env.last_reply
        if reply is not None and reply.error is None:
            self.answers.append(stated_answer(reply.text))
        latest = self.answers[-1]
        if len(self.answers) > 1 and any(verify.is_equivalent(latest, a) for a in self.answers[:-1]):
            return answer_action(latest)
        remaining = info["threshold_usd"] - info["cost_usd"]
        costs = self.expected_costs()
        while self.queue and costs[self.queue[0]] > remaining:
            self.queue.pop(0)
        if not self.queue or info["turn"] >= self.env.max_turns - 1:
            return answer_action(latest)
        return call_action(self.queue.pop(0), self.env.problem.problem)


class Oracle(Router):
    name = "oracle"

    def choose(self, info: dict[str, Any]) -> str:
        problem = self.env.problem
        if self._correct(self.own_answer()):
            return SELF
        correct = {}
        for name in self.experts():
            reply = self.env.pool.call(name, problem.problem, problem)
            if reply.error is None and self._correct(stated_answer(reply.text)):
                correct[name] = reply.cost_usd
        within = {n: c for n, c in correct.items() if c <= info["threshold_usd"]}
        pick_from = within or correct
        return min(pick_from, key=pick_from.get) if pick_from else SELF

    def _correct(self, answer: str) -> bool:
        return verify.check(answer, self.env.problem.answer) is verify.Verdict.CORRECT


BASELINES = (
    "always-self", "random", "cheapest-affordable", "best-affordable", "cascade", "cascade-agree", "vote", "best-fixed",
    "threshold", "knn", "oracle",
)


def make_router(name: str, seed: int = 0) -> Router:
    """A router by name: one of `BASELINES` or `always:<expert>`. Learned ones (`best-fixed`,
    `threshold`, `knn`) must be fitted (`router.fit(pool, train_problems)`) before use."""
    from corl_gym.agents.aggregate_routers import AGGREGATING
    from corl_gym.agents.learned_routers import LEARNED

    if name.startswith("always:"):
        return AlwaysExpert(name.split(":", 1)[1])
    table = {
        "always-self": AlwaysSelf,
        "random": lambda: RandomRouter(seed),
        "cheapest-affordable": CheapestAffordable,
        "best-affordable": BestAffordable,
        "cascade": Cascade,
        "oracle": Oracle,
        **AGGREGATING,
        **LEARNED,
    }
    if name not in table:
        raise ValueError(f"unknown policy {name!r}: use one of {', '.join(BASELINES)} or always:<expert>")
    return table[name]()


def router_names(expert_names: list[str]) -> list[str]:
    """Every baseline for a pool, `always:<expert>` included."""
    return ["always-self", *(f"always:{e}" for e in expert_names), *BASELINES[1:]]


def episode_rng(seed: int, problem_id: str, budget: str, threshold_usd: float) -> np.random.Generator:
    """The random generator of one episode, fixed by its arguments alone (a stable hash, the same on every
    machine and process)."""
    return np.random.default_rng(stable_random.rng(seed, problem_id, budget, repr(float(threshold_usd))).getrandbits(64))


def answer_action(value: str) -> AnswerAction:
    """Answer `value` (boxed); the env takes it as is, whatever tags `value` holds."""
    return AnswerAction(f"\\boxed{{{value}}}")


def call_action(expert: str, query: str) -> CallAction:
    """Send `query` to `expert`; the env takes it as is, whatever tags `query` holds."""
    return CallAction(expert, query)



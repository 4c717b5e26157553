"""Baseline routers by name (`make_router`, `router_names`): scripted policies that act in `CORL-Math-v0`.

A router's action is a parsed `corl_gym.protocol` action (`CallAction`, `AnswerAction`), which the env
takes without re-parsing (in text and token mode alike), so a query or an answer that holds grammar tags
(an expert's `\\boxed{7</call>}`, a problem quoting `<answer>`) cannot break or redirect the turn. The
env appends the action's canonical text (`<call expert="NAME">query</call>`, `<answer>...</answer>`) to
the context, as if the router had written it.

The scripted routers (`agents.scripted_routers`) make at most one expert call per episode, but for
`cascade`; the aggregating ones (`agents.aggregate_routers`) make several and submit one of the answers
seen. Where a router answers itself, the answer comes from the pool's `controller` entry (the controller
model's own answer profile, free of charge), since no LLM is plugged in. Routers run in text mode and
read the episode only through the env's `RouterView` (the interface: `agents.router_base.Router`).

This module is the registry: it imports every router module, and none of them imports it.

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

from corl_gym.agents.aggregate_routers import AGGREGATING
from corl_gym.agents.learned_routers import LEARNED
from corl_gym.agents.router_base import Router
from corl_gym.agents.scripted_routers import (
    AlwaysExpert,
    AlwaysSelf,
    BestAffordable,
    Cascade,
    CheapestAffordable,
    Oracle,
    RandomRouter,
)

__all__ = ["BASELINES", "make_router", "router_names"]

BASELINES = (
    "always-self", "random", "cheapest-affordable", "best-affordable", "cascade", "cascade-agree", "vote", "best-fixed",
    "threshold", "knn", "oracle",
)


def make_router(name: str, seed: int = 0) -> Router:
    """A router by name: one of `BASELINES` or `always:<expert>`. Learned ones (`best-fixed`,
    `threshold`, `knn`) must be fitted (`router.fit(pool, train_problems)`) before use."""
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

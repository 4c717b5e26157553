"""`RouterView`: all a router may see of a `CORL-Math-v0` episode, and all it may do there besides acting.

A router (`corl_gym.agents.router_base.Router`) is handed the env, takes its view (`RouterView.of(env)`)
and reads the episode only through it. The view cannot step, reset or close the env, reach its pool or
its private state, or change its accounts other than through the calls its docstring lists.
"""

from __future__ import annotations

from typing import Any

from corl_gym.data import Problem
from corl_gym.experts import ExpertReply


class RouterView:
    """What a router may read of the episode in play, and the calls it may make besides its actions.

    Every value is read from the env when asked, so a view taken at `reset` follows the whole episode.

    **Read.**
    - `problem`: the episode's `Problem` (None before the env's first reset); `problem.problem` is the
      text a router sends experts. Its gold `answer` is for the oracle alone (`oracle`, an upper bound
      for benchmarks): a router that reads it is no policy.
    - `last_reply`: the reply to the latest step's expert call, checked
      (`corl_gym.experts.base.billable_reply`: `text` a `str`, amounts finite and non-negative; a failed
      call has `error` set), or None when the latest step called no expert or no step was taken.
    - `expert_names`: the pool's experts, in pool order (the order of `info["calls"]`).
    - `expected_costs(query=None)`: expert name -> what a call with `query` (default: the problem's text)
      is expected to cost (`ExpertSpec.expected_cost`, the estimate the hard cap goes by).
    - `max_turns`: the turns an episode may take; one that has not answered by the last is truncated.
    - `verify_timeout`: the seconds one answer check may take (for routers that compare answers).

    The budget, the spend so far, the turn and the calls per expert are in the `info` of every step.

    **Calls.** None of them takes a turn or adds to the context.
    - `controller_reply()`: the controller model's own reply to the problem (`Pool.call_controller`),
      which the episode is never charged for. It never raises: a failed call is a reply with `error` set
      (the pool logs the failure once per kind).
    - `peek(expert)`: for the oracle alone: what `expert` replies to the problem, outside the episode (not
      charged to it). It is a real call, which a live pool pays for: use it with simulated or replayed
      pools only.
    - `charge_controller(cost_usd)`: for an LLM controller that reports what its own turn cost
      (`agents.api_controller`): added to the episode's spend, only when the pool charges the controller
      and only as a finite non-negative amount (`CORLMathEnv.charge_controller`). Scripted routers never
      call it.
    """

    __slots__ = ("_env",)

    def __init__(self, env: Any):
        self._env = env  # a `CORLMathEnv` (not imported: the env module imports this one)

    @classmethod
    def of(cls, env: Any) -> RouterView:
        """The view of a `CORLMathEnv`, wrapped (as `gym.make` returns it) or not; a view is its own view."""
        if isinstance(env, RouterView):
            return env
        return env.get_wrapper_attr("router_view")()

    @property
    def problem(self) -> Problem | None:
        return self._env.problem

    @property
    def last_reply(self) -> ExpertReply | None:
        return self._env.last_reply

    @property
    def expert_names(self) -> tuple[str, ...]:
        return tuple(self._env.expert_names)

    def expected_costs(self, query: str | None = None) -> dict[str, float]:
        return self._env.pool.expected_costs(self._env.problem.problem if query is None else query)

    @property
    def max_turns(self) -> int:
        return self._env.max_turns

    @property
    def verify_timeout(self) -> float:
        return self._env.verify_timeout

    def controller_reply(self) -> ExpertReply:
        problem = self._env.problem
        return self._env.pool.call_controller(problem.problem, problem)

    def peek(self, expert: str) -> ExpertReply:
        problem = self._env.problem
        return self._env.pool.call(expert, problem.problem, problem)

    def charge_controller(self, cost_usd: float) -> bool:
        return self._env.charge_controller(cost_usd)

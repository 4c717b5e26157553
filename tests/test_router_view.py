"""The router interface: routers read `CORL-Math-v0` only through its `RouterView`, whose members are the
documented contract, and which can neither drive the env nor change its accounts beyond its documented calls."""

import ast
import inspect
from pathlib import Path

import gymnasium as gym
import pytest

import corl_gym  # noqa: F401  (registers the envs)
from corl_gym.agents import aggregate_routers, learned_routers, router_base, routers, scripted_routers
from corl_gym.agents.episodes import run_episode
from corl_gym.agents.router_base import affordable_experts
from corl_gym.agents.routers import make_router, router_names
from corl_gym.data import load_problems
from corl_gym.envs.math_env import CORLMathEnv
from corl_gym.envs.router_view import RouterView
from corl_gym.experts import Expert, Pool, load_pool
from corl_gym.protocol import CallAction

CONTRACT = {
    "problem", "last_reply", "expert_names", "expected_costs", "max_turns", "verify_timeout",  # read
    "controller_reply", "peek", "charge_controller",  # calls
    "of",  # how a router gets the view
}
ROUTER_MODULES = (router_base, scripted_routers, aggregate_routers, learned_routers, routers)


def _public(cls):
    return {name for name in dir(cls) if not name.startswith("_")}


def test_the_view_has_exactly_the_documented_members():
    assert _public(RouterView) == CONTRACT
    for name in CONTRACT - {"of"}:
        assert f"`{name}" in RouterView.__doc__, f"{name} is not in the contract (RouterView's docstring)"
    assert "RouterView" in router_base.Router.__doc__ and "self.view" in router_base.Router.__doc__


def test_the_view_is_read_only_and_follows_the_episode():
    env = gym.make("CORL-Math-v0", budget="high")
    _, info = env.reset(seed=0)
    view = RouterView.of(env)  # wrapped, as gym.make returns it
    assert RouterView.of(view) is view and isinstance(RouterView.of(env.unwrapped), RouterView)
    for name in ("problem", "last_reply", "expert_names", "max_turns", "verify_timeout"):
        with pytest.raises(AttributeError):
            setattr(view, name, None)
    with pytest.raises(AttributeError):
        view.pool = None  # no new attributes either (`__slots__`)
    assert view.problem is env.unwrapped.problem and view.last_reply is None
    assert list(view.expert_names) == info["expert_names"] and view.max_turns == 4
    assert list(view.expected_costs()) == info["expert_names"]
    env.step(CallAction("o3", view.problem.problem))
    assert view.last_reply is env.unwrapped.last_reply is not None  # live: no second view needed


def test_the_views_calls_take_no_turn_and_charge_the_episode_nothing():
    env = gym.make("CORL-Math-v0", budget="high")
    env.reset(seed=0)
    observation, _, _, _, info = env.step(CallAction("gpt-4.1", env.unwrapped.problem.problem))
    view, reply = RouterView.of(env), env.unwrapped.last_reply
    assert view.controller_reply().error is None and all(view.peek(n).error is None for n in view.expert_names)
    assert view.charge_controller(0.5) is False  # this pool does not charge the controller
    assert env.unwrapped.last_reply is reply
    answered, _, _, _, after = env.step("<answer>\\boxed{0}</answer>")
    assert answered == observation + "<answer>\\boxed{0}</answer>"  # nothing was added to the context
    assert after["cost_usd"] == info["cost_usd"] and after["calls"] == info["calls"] and after["turn"] == 2


def _fitted(name, pool, train):
    router = make_router(name, seed=3)
    return router.fit(pool, train) if hasattr(router, "fit") else router


def _holds_env_internals(value) -> bool:
    return isinstance(value, (gym.Env, Pool, Expert))


def test_every_shipped_router_plays_through_the_view_and_holds_nothing_else_of_the_env():
    pool = load_pool("sim-paper")
    problems = load_problems("synthetic", limit=24)
    env = gym.make("CORL-Math-v0", pool=pool, problems=problems[12:], budget="mixed")
    for name in router_names(pool.expert_names()):
        router = _fitted(name, pool, problems[:12])
        for i in range(4):
            row = run_episode(env, router, i, {"problem_index": i})
            assert row["action_errors"] == 0 and row["verdict"] is not None, name
            assert isinstance(router.view, RouterView) and not hasattr(router, "env")
            assert not any(_holds_env_internals(v) for v in vars(router).values()), name


def test_router_modules_never_reach_into_the_env():
    for module in ROUTER_MODULES:
        tree = ast.parse(Path(inspect.getfile(module)).read_text())
        reached = {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)}
        assert not reached & {"unwrapped", "pool", "_env", "_episode", "text_env"}, module.__name__


def test_affordable_experts_takes_the_env_or_its_view():
    env = CORLMathEnv(budget="low")
    _, info = env.reset(seed=0)
    by_env = affordable_experts(env, info["threshold_usd"])
    assert by_env == affordable_experts(env.router_view(), info["threshold_usd"])
    assert by_env and all(cost <= info["threshold_usd"] for cost in by_env.values())


def test_router_modules_import_one_way():
    """The base imports no router module; the router modules import the base, not the registry."""
    def imports(module):
        tree = ast.parse(Path(inspect.getfile(module)).read_text())
        return {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}

    assert not {m for m in imports(router_base) if m.startswith("corl_gym.agents")}
    for module in (scripted_routers, aggregate_routers, learned_routers):
        assert "corl_gym.agents.routers" not in imports(module), module.__name__

"""Pools: built-in names, YAML validation errors, async fan-out, lazy imports, secrets."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap

import pytest

from corl_gym.data import Problem, load_problems
from corl_gym.experts import POOL_NAMES, Expert, ExpertReply, ExpertSpec, Pool, load_pool
from corl_gym.experts.pool import POOLS_DIR
from corl_gym.experts.sim import SimExpert

PROBLEM = Problem(id="synthetic-1", problem="What is 2+3?", answer="5", level=2)
GOOD_ENTRY = "{name: a, backend: sim, model: m, price_in: 1, price_out: 2, skill: 1.0}"


def _write(tmp_path, text: str):
    path = tmp_path / "pool.yaml"
    path.write_text(textwrap.dedent(text))
    return str(path)


def _pool_text(controller: str = GOOD_ENTRY, experts: str = f"[{GOOD_ENTRY}]",
               budgets: str = "{low: 0.001, medium: 0.01, high: 0.05}", extra: str = "") -> str:
    return f"name: t\ncontroller: {controller}\nexperts: {experts}\nbudgets: {budgets}\n{extra}"


def test_builtin_names_match_files():
    assert set(POOL_NAMES) == {path.stem for path in POOLS_DIR.glob("*.yaml")}


def test_sim_paper_roster_prices_budgets():
    pool = load_pool("sim-paper")
    assert pool.name == "sim-paper" and pool.dataset == "synthetic"
    assert pool.expert_names() == ["gpt-4.1-nano", "gpt-4.1", "o3"]
    prices = {name: (e.spec.price_in, e.spec.price_out) for name, e in pool.experts.items()}
    assert prices == {"gpt-4.1-nano": (0.1, 0.4), "gpt-4.1": (2.0, 8.0), "o3": (2.0, 8.0)}
    assert pool.controller.name == "qwen2.5-7b-instruct" and pool.controller.spec.cost(1000, 1000) == 0.0
    assert pool.budgets == {"low": 0.001, "medium": 0.01, "high": 0.05}
    assert all(e.spec.description for e in pool.experts.values())
    pool.check_covers(load_problems("synthetic", limit=10))  # no-op for sim
    pool.close()
    pool.close()  # idempotent


def test_paper_pool_needs_a_key_and_hides_it(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(ValueError, match="OPENAI_API_KEY"):
        load_pool("paper")
    secret = "sk-paper-test-SECRETSECRET123"
    monkeypatch.setenv("OPENAI_API_KEY", secret)
    pool = load_pool("paper")
    assert pool.expert_names() == ["gpt-4.1-nano", "gpt-4.1", "o3"]
    assert secret not in repr(pool) and all(secret not in repr(e.spec) for e in pool.experts.values())
    o3 = pool.experts["o3"]
    assert o3.params == {"max_completion_tokens": 16384} and "temperature" in pool.experts["gpt-4.1"].params


def test_unknown_name_lists_valid_ones():
    with pytest.raises(ValueError) as error:
        load_pool("no-such-pool")
    assert all(name in str(error.value) for name in POOL_NAMES)
    with pytest.raises(FileNotFoundError):
        load_pool("missing/pool.yaml")


@pytest.mark.parametrize("text, message", [
    (_pool_text(experts="[{name: a, backend: sim, model: m, price_in: 1}]"), r"expert a: missing key\(s\) price_out"),
    (_pool_text(experts="[{name: a, backend: gpu, model: m, price_in: 1, price_out: 1}]"),
     "unknown backend 'gpu'.*sim"),
    (_pool_text(experts="[{name: a, backend: sim, model: m, price_in: -1, price_out: 1, skill: 1}]"),
     "expert a: price_in must be a non-negative"),
    (_pool_text(controller="{name: c, backend: sim, model: m, price_in: 0, price_out: x}"), "controller: price_out"),
    (_pool_text(budgets="{low: 0.001, high: 0.05}"), r"missing mode\(s\) medium"),
    (_pool_text(budgets="{low: -1, medium: 0.01, high: 0.05}"), "budgets: low must be"),
    (_pool_text(experts="[]"), "non-empty list"),
    (_pool_text(experts=f"[{GOOD_ENTRY}, {GOOD_ENTRY}]"), r"duplicate expert name\(s\) a"),
    (_pool_text(extra="expert: oops"), r"unknown key\(s\) expert"),
    ("name: t\nexperts: []", r"missing key\(s\) controller, budgets"),
    ("name: [unclosed", "not valid YAML"),
    (_pool_text(experts="[{name: a, backend: sim, model: m, price_in: 1, price_out: 1}]"), "expert 'a'.*`accuracy`"),
    (_pool_text(experts="[{name: r, backend: replay, model: m, price_in: 1, price_out: 1, file: nope.jsonl}]"),
     "expert 'r'.*nope.jsonl not found"),
])
def test_yaml_errors_name_the_file_and_entry(tmp_path, text, message):
    path = _write(tmp_path, text)
    with pytest.raises((ValueError, FileNotFoundError), match=message) as error:
        load_pool(path)
    assert path in str(error.value)


def test_custom_sim_pool_from_yaml(tmp_path):
    path = _write(tmp_path, """
        name: mine
        dataset: synthetic
        budgets: {low: 0.0001, medium: 0.001, high: 0.01, extreme: 1.0}
        controller: {name: self, backend: sim, model: s, price_in: 0, price_out: 0, accuracy: {1: 0.9, 5: 0.2}}
        experts:
          - {name: strong, backend: sim, model: big, description: Big., price_in: 1, price_out: 4,
             skill: 3.0, completion_tokens: 800, correlation: 0.2}
    """)
    pool = load_pool(path, seed=3)
    assert pool.budgets["extreme"] == 1.0 and pool.experts["strong"].seed == 3
    assert pool.experts["strong"].spec.options["completion_tokens"] == 800


class _Failing(Expert):
    def call(self, query, problem):
        raise RuntimeError("backend exploded")


def _fan_out_pool(latency: bool) -> Pool:
    def sim(name: str) -> SimExpert:
        options = {"skill": 1.0, "simulate_latency": latency, "latency_base_s": 0.2, "tokens_per_s": 1e9}
        return SimExpert(ExpertSpec(name=name, backend="sim", model=name, price_in=1, price_out=1, options=options))
    experts = {"a": sim("a"), "b": sim("b"), "boom": _Failing(ExpertSpec(name="boom", backend="sim", model="x"))}
    return Pool(name="t", controller=sim("self"), experts=experts, budgets={"low": 1.0})


def _count_concurrent_sleeps(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """Patch asyncio.sleep (how a sim expert waits out its latency) to record how many overlap."""
    real_sleep, seen = asyncio.sleep, {"now": 0, "most": 0}

    async def sleep(delay, *args, **kwargs):
        seen["now"] += 1
        seen["most"] = max(seen["most"], seen["now"])
        try:
            return await real_sleep(delay, *args, **kwargs)
        finally:
            seen["now"] -= 1

    monkeypatch.setattr(asyncio, "sleep", sleep)
    return seen


def test_acall_many_is_concurrent_ordered_and_never_raises(monkeypatch):
    pool = _fan_out_pool(latency=True)
    problems = load_problems("synthetic", limit=10)
    calls = [("a" if i % 2 else "b", f"q{i}", p) for i, p in enumerate(problems)]
    calls += [("boom", "q", PROBLEM), ("nobody", "q", PROBLEM), ("self", "q", PROBLEM)]
    sleeps = _count_concurrent_sleeps(monkeypatch)
    replies = asyncio.run(pool.acall_many(calls))
    assert sleeps["most"] == 11  # the 10 expert calls and the controller's were all in flight at once
    assert len(replies) == len(calls) and all(isinstance(r, ExpertReply) for r in replies)
    expected = [pool.get(name).call(query, p) for name, query, p in calls[:10]]
    assert [r.text for r in replies[:10]] == [r.text for r in expected]
    assert "backend exploded" in replies[10].error and "no expert 'nobody'" in replies[11].error
    assert replies[12].ok
    assert asyncio.run(pool.acall_many([])) == []


def test_call_many_inside_a_running_loop():
    pool = _fan_out_pool(latency=False)

    async def inside() -> list[ExpertReply]:
        return pool.call_many([("a", "q", PROBLEM)])

    assert asyncio.run(inside())[0].ok and pool.call_many([("b", "q", PROBLEM)])[0].ok


def test_import_is_light():
    code = ("import sys, corl_gym.experts; corl_gym.experts.load_pool('sim-paper');"
            "heavy = [m for m in ('torch', 'transformers', 'vllm', 'openai') if m in sys.modules];"
            "assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("entry, message", [
    ("{name: a, backend: openai, model: m, price_in: 1, price_out: 1, api_key_env: null, max_token: 64}",
     "unknown key `max_token` for backend 'openai'; did you mean `max_tokens`"),
    ("{name: a, backend: openai, model: m, price_in: 1, price_out: 1, api_key_env: null, tempurature: 0.2}",
     "did you mean `temperature`"),
    ("{name: a, backend: openai, model: m, price_in: 1, price_out: 1, api_key_env: null, max_retires: 9}",
     "did you mean `max_retries`"),
    ("{name: a, backend: sim, model: m, price_in: 1, price_out: 1, skill: 1, max_tokens: 64}",
     "unknown key `max_tokens` for backend 'sim'"),
    ("{name: a, backend: sim, model: m, price_in: 1, price_out: 1, skill: 1, completion_tokens: -400}",
     "`completion_tokens` must be a finite number > 0"),
    ("{name: a, backend: sim, model: m, price_in: 1, price_out: 1, skill: 1, prompt_overhead: -16}",
     "`prompt_overhead` must be an integer >= 0"),
    ("{name: a, backend: sim, model: m, price_in: 1, price_out: 1, skill: 1, expected_completion_tokens: -5}",
     "`expected_completion_tokens` must be an integer >= 1"),
])
def test_misspelt_keys_and_negative_counts_are_errors(tmp_path, entry, message):
    path = _write(tmp_path, _pool_text(experts=f"[{entry}]"))
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")) as error:
        load_pool(path)
    assert path in str(error.value)


def test_budgets_must_rise_from_low_to_high_and_top_level_typos_get_a_suggestion(tmp_path):
    with pytest.raises(ValueError, match=r"low <= medium <= high, got low \$0.05, medium \$0.01, high \$0.001"):
        load_pool(_write(tmp_path, _pool_text(budgets="{low: 0.05, medium: 0.01, high: 0.001}")))
    with pytest.raises(ValueError, match="did you mean `budgets`"):
        load_pool(_write(tmp_path, _pool_text(extra="budget: {low: 1}")))


def test_every_builtin_pool_loads(data_dir, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-builtin-pools")
    for name in POOL_NAMES:
        pool = load_pool(name)
        assert pool.expert_names() and pool.budgets["low"] <= pool.budgets["medium"] <= pool.budgets["high"]
        pool.close()

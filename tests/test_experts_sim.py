"""Backend `sim`: determinism, calibration on MATH500 and synthetic levels, correlated failures, costs,
budgets that matter, and wrong answers a verifier rejects."""

from __future__ import annotations

import asyncio
import json
import statistics
import time

import pytest

from corl_gym.data import Problem, load_problems
from corl_gym.experts import ExpertSpec, load_pool
from corl_gym.experts.sim import SimExpert, accuracy_profile, difficulty
from corl_gym.experts.wrong_answers import wrong_answer
from corl_gym.verify import Verdict, check, check_many, extract_answer

# The paper's single-model MATH500 figures (controller, o3) and our approximations (nano, gpt-4.1).
MATH500_TARGETS = {"qwen2.5-7b-instruct": 0.708, "gpt-4.1-nano": 0.75, "gpt-4.1": 0.87, "o3": 0.938}
SEEDS = range(4)


@pytest.fixture(scope="module")
def math500(data_dir):
    return load_problems(str(data_dir / "math500.jsonl"))


@pytest.fixture(scope="module")
def synthetic():
    return load_problems("synthetic", limit=1500)


def _experts(seed: int = 0):
    pool = load_pool("sim-paper", seed=seed)
    return [pool.controller, *pool.experts.values()]


def test_deterministic_per_seed_and_query_independent():
    problems = load_problems("synthetic", limit=50)
    first = [e.call("ask", p) for e in _experts(0) for p in problems]
    again = [e.call("ask", p) for e in _experts(0) for p in problems]
    other = [e.call("ask", p) for e in _experts(1) for p in problems]
    assert first == again and first != other
    reworded = [e.call("a much longer wording of the same question", p) for e in _experts(0) for p in problems]
    assert [r.text for r in reworded] == [r.text for r in first]  # the sim cannot read the query
    assert all(r.prompt_tokens > f.prompt_tokens for r, f in zip(reworded, first))


def test_math500_levels_and_calibration(math500):
    assert [sum(p.level == level for p in math500) for level in range(1, 6)] == [43, 90, 105, 128, 134]
    per_seed = {name: [] for name in MATH500_TARGETS}
    for seed in SEEDS:
        for expert in _experts(seed):
            per_seed[expert.name].append(statistics.mean(expert.correct_on(p) for p in math500))
    for name, target in MATH500_TARGETS.items():
        assert statistics.mean(per_seed[name]) == pytest.approx(target, abs=0.02), (name, per_seed[name])
        assert all(abs(a - target) < 0.05 for a in per_seed[name]), (name, per_seed[name])
    means = [statistics.mean(per_seed[name]) for name in MATH500_TARGETS]
    assert means == sorted(means)


def test_reply_text_verifies_as_the_simulated_outcome(math500):
    for expert in _experts(0):
        replies = [expert.call(p.problem, p) for p in math500]
        verdicts = check_many([(extract_answer(r.text), p.answer) for r, p in zip(replies, math500)])
        outcome = [expert.correct_on(p) for p in math500]
        assert [v == Verdict.CORRECT for v in verdicts] == outcome, expert.name


def test_synthetic_uses_the_level_profile(synthetic):
    assert {p.level for p in synthetic} == {1, 2, 3, 4, 5}
    for expert in _experts(0):
        expected = statistics.mean(expert.accuracy(difficulty(p)) for p in synthetic)
        measured = statistics.mean(expert.correct_on(p) for p in synthetic)
        assert measured == pytest.approx(expected, abs=0.03), expert.name
        reply = expert.call("q", synthetic[0])
        assert check(extract_answer(reply.text), synthetic[0].answer) == (
            Verdict.CORRECT if expert.correct_on(synthetic[0]) else Verdict.WRONG
        )


def test_failures_correlate_across_experts_within_a_level(synthetic):
    hard = [p for p in synthetic if p.level == 5]
    controller, nano, gpt41, o3 = _experts(0)
    o3_wrong = [not o3.correct_on(p) for p in hard]
    nano_wrong = [not nano.correct_on(p) for p in hard]
    p_o3 = statistics.mean(o3_wrong)
    p_o3_given_nano = statistics.mean(o for o, n in zip(o3_wrong, nano_wrong) if n)
    p_o3_given_nano_right = statistics.mean(o for o, n in zip(o3_wrong, nano_wrong) if not n)
    assert p_o3_given_nano > 1.5 * p_o3 and p_o3_given_nano_right < p_o3


def test_uncorrelated_option_removes_the_link(synthetic):
    """With a flat profile (no level effect), only the latent ease links two experts."""
    def spec(name, c):
        return ExpertSpec(name=name, backend="sim", model=name, options={"accuracy": {3: 0.5}, "correlation": c})

    problems = synthetic[:1000]
    for c, low, high in ((0.0, -0.08, 0.08), (0.9, 0.6, 1.0)):
        a, b = SimExpert(spec("a", c)), SimExpert(spec("b", c))
        xs, ys = [a.correct_on(p) for p in problems], [b.correct_on(p) for p in problems]
        assert low < statistics.correlation([float(x) for x in xs], [float(y) for y in ys]) < high


def test_cost_arithmetic_and_token_draws(synthetic):
    controller, nano, gpt41, o3 = _experts(0)
    problem = synthetic[7]
    query = "x" * 400
    for expert in (controller, nano, gpt41, o3):
        reply = expert.call(query, problem)
        assert reply.prompt_tokens == 400 // 4 + 16
        assert reply.cost_usd == pytest.approx(expert.spec.cost(reply.prompt_tokens, reply.completion_tokens))
        assert reply.cost_usd == pytest.approx(
            (reply.prompt_tokens * expert.spec.price_in + reply.completion_tokens * expert.spec.price_out) / 1e6
        )
    assert controller.call(query, problem).cost_usd == 0.0
    medians = {e.name: statistics.median(e.completion_tokens(p) for p in synthetic) for e in (nano, gpt41, o3)}
    assert medians["gpt-4.1-nano"] < medians["gpt-4.1"] < 1000 < medians["o3"]


def test_budgets_are_meaningful(synthetic):
    """Share of single calls each budget affords, on the synthetic set (MATH levels 1-5)."""
    pool = load_pool("sim-paper")
    share = {
        (name, mode): statistics.mean(pool.experts[name].call(p.problem, p).cost_usd <= limit for p in synthetic)
        for name in pool.experts for mode, limit in pool.budgets.items()
    }
    assert share["gpt-4.1-nano", "low"] > 0.95
    assert share["gpt-4.1", "low"] < 0.05 and share["o3", "low"] < 0.05
    assert share["gpt-4.1", "medium"] > 0.85 and share["o3", "medium"] < 0.4
    assert min(share[name, "high"] for name in pool.experts) > 0.9


def test_difficulty_without_level():
    assert difficulty(Problem("aime2024-3", "p", "1", dataset="aime2024")) == 7
    assert difficulty(Problem("amc2023-3", "p", "1")) == 6  # from the id prefix
    assert difficulty(Problem("x-1", "p", "1", dataset="gsm8k")) == 3
    assert difficulty(Problem("math_train-1", "p", "1", level=0)) == 3
    controller, nano, gpt41, o3 = _experts(0)
    assert o3.accuracy(7) > gpt41.accuracy(7) > nano.accuracy(7) > controller.accuracy(7)


def test_accuracy_profiles():
    table = accuracy_profile({"accuracy": {1: 0.9, "3": 0.5, "aime": 0.1}}, "e")
    assert [table(d) for d in range(1, 8)] == [0.9, 0.9, 0.5, 0.5, 0.5, 0.1, 0.1]
    logistic = accuracy_profile({"skill": 0.0, "slope": 1.0}, "e")
    assert logistic(3) == 0.5 and logistic(1) > 0.85 and logistic(5) < 0.15
    for bad in ({}, {"accuracy": {1: 1.5}}, {"accuracy": {9: 0.5}}, {"accuracy": []}):
        with pytest.raises(ValueError, match="expert 'e'|^e:"):
            accuracy_profile(bad, "expert 'e'")


def test_latency_reported_not_slept_unless_asked(monkeypatch):
    problem = Problem("s-1", "p", "3", level=5)
    spec = ExpertSpec(name="slow", backend="sim", model="m", options={"skill": 1.0, "completion_tokens": 100,
                                                                      "tokens_per_s": 1000.0, "latency_base_s": 0.2})
    slept: list[float] = []
    monkeypatch.setattr(time, "sleep", slept.append)
    reply = SimExpert(spec).call("q", problem)
    assert reply.latency_s > 0.2 and slept == []  # reported, not slept
    spec = ExpertSpec(name="slow", backend="sim", model="m", options={**spec.options, "simulate_latency": True})
    reply = SimExpert(spec).call("q", problem)
    assert slept == [reply.latency_s]
    real_sleep, waiting = asyncio.sleep, {"now": 0, "most": 0}

    async def sleep(delay, *args, **kwargs):
        waiting["now"] += 1
        waiting["most"] = max(waiting["most"], waiting["now"])
        await real_sleep(0)
        waiting["now"] -= 1

    monkeypatch.setattr(asyncio, "sleep", sleep)
    replies = asyncio.run(SimExpert(spec).acall_batch([("q", problem)] * 5))
    assert len(replies) == 5 and waiting["most"] == 5  # the five latencies are waited out concurrently


@pytest.mark.parametrize("gold", ["0", "7", "-3", "1,000", "025", "0.5", ".35625", "\\frac{1}{2}", "-\\frac{24}{25}",
                                  "2\\sqrt{3}", "(6,31,-1)", "x^2+1", "p - q", "\\text{Evelyn}", "\\text{(C)}",
                                  "odd", "\\infty", "864 \\mbox{ inches}^2", "0.56 = 56\\%", "\\$32,\\!348",
                                  "\\boxed{12}", "$\\frac{3}{4}$"])
def test_wrong_answers_are_wrong(gold):
    for key in range(8):
        wrong = wrong_answer(gold, key)
        assert wrong and check(f"\\boxed{{{wrong}}}", gold) != Verdict.CORRECT, (gold, wrong)
    assert wrong_answer(gold, 1) == wrong_answer(gold, 1)


def test_wrong_answers_on_real_golds(data_dir):
    golds = [json.loads(line)["answer"] for name in ("math500", "aime2024", "amc2023")
             for line in (data_dir / f"{name}.jsonl").open()]
    golds += [p.answer for p in load_problems("synthetic", limit=1000)]
    verdicts = check_many([(f"\\boxed{{{wrong_answer(g, 'k')}}}", g) for g in golds])
    assert Verdict.CORRECT not in verdicts

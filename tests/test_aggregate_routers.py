"""Aggregating routers (`vote`, `cascade-agree`, `knn`'s plans) in CORL-Math-v0, and their labels."""

import json

import gymnasium as gym
import numpy as np
import pytest

import corl_gym  # noqa: F401
from corl_gym.agents.episodes import run_episode
from corl_gym.agents.labels import label_choices, plan_labels
from corl_gym.agents.routers import make_router
from corl_gym.benchmarks.bench import BenchConfig, run_bench
from corl_gym.data import Problem, load_problems
from corl_gym.envs.math_env import CORLMathEnv
from corl_gym.experts import ExpertReply, Pool, load_pool
from corl_gym.experts.base import Expert, ExpertSpec, estimate_prompt_tokens
from corl_gym.splits import split_problems

QUERY = "3+4?"
TOKENS = estimate_prompt_tokens(QUERY)


class Fixed(Expert):
    """Replies `text` at `cost`, which is also its expected cost for `QUERY` (prompt tokens only)."""

    def __init__(self, name, text, cost):
        super().__init__(ExpertSpec(name, "test", "m", price_in=cost * 1e6 / TOKENS, price_out=0.0,
                                    options={"expected_completion_tokens": 0}))
        self.text, self.cost = text, cost

    def call(self, query, problem):
        return ExpertReply(text=self.text, prompt_tokens=TOKENS, completion_tokens=0, cost_usd=self.cost)


def scripted(replies, own="\\boxed{5}", budget="high", max_turns=5):
    """Experts e1, e2, ... reply `replies` and cost 0.001, 0.002, ... (expected cost = cost for a short query)."""
    experts = {f"e{i + 1}": Fixed(f"e{i + 1}", text, 0.001 * (i + 1)) for i, text in enumerate(replies)}
    pool = Pool("scripted", Fixed("self", own, 0.0), experts, {"low": 0.0015, "medium": 0.0035, "high": 0.05})
    return CORLMathEnv(pool=pool, problems=[Problem("p", QUERY, "7")], budget=budget, max_turns=max_turns)


def test_vote_buys_affordable_experts_cheapest_first_then_submits_the_plurality():
    env = scripted(["\\boxed{8}", "\\boxed{7}", "\\boxed{7}"])
    row = run_episode(env, make_router("vote"), 0, {})
    assert row["calls"] == {"e1": 1, "e2": 1, "e3": 1} and row["reward"] == 1.0  # 7 wins two to one to one
    row = run_episode(env, make_router("vote"), 0, {"budget": "medium"})  # $0.0035: e1 then e2, not e3
    assert row["calls"] == {"e1": 1, "e2": 1, "e3": 0} and row["reward"] == 1.0  # a tie of ones: the dearest (e2)
    row = run_episode(env, make_router("vote"), 0, {"budget": "low"})
    assert row["calls"] == {"e1": 1, "e2": 0, "e3": 0} and row["reward"] == 0.0  # 5 vs 8: e1's 8 is dearer


def test_cascade_agree_stops_at_the_first_agreement():
    env = scripted(["\\boxed{8}", "\\boxed{8}", "\\boxed{7}"])
    row = run_episode(env, make_router("cascade-agree"), 0, {})
    assert row["calls"] == {"e1": 1, "e2": 1, "e3": 0} and row["reward"] == 0.0  # 8 and 8 agree: submitted
    env = scripted(["\\boxed{5}", "\\boxed{7}", "\\boxed{7}"])
    row = run_episode(env, make_router("cascade-agree"), 0, {})
    assert row["calls"] == {"e1": 1, "e2": 0, "e3": 0} and row["verdict"] == "WRONG"  # the own 5 and e1's 5 agree
    env = scripted(["\\boxed{6}", "I could not finish.", "\\boxed{7}"])  # a reply without an answer is no vote
    row = run_episode(env, make_router("cascade-agree"), 0, {})
    assert row["calls"] == {"e1": 1, "e2": 1, "e3": 1} and row["reward"] == 1.0  # no agreement: the dearest, 7


def test_aggregating_routers_leave_the_last_turn_for_the_answer():
    env = scripted(["\\boxed{8}", "\\boxed{9}", "\\boxed{7}"], max_turns=3)
    for name in ("vote", "cascade-agree"):
        row = run_episode(env, make_router(name), 0, {})
        assert row["turns"] == 3 and sum(row["calls"].values()) == 2 and row["verdict"] is not None


def test_a_failed_call_adds_no_answer():
    env = scripted(["\\boxed{8}", "\\boxed{7}"])
    env.pool.experts["e2"].call = lambda query, problem: ExpertReply(text="", error="boom", error_kind="exception")
    row = run_episode(env, make_router("vote"), 0, {})
    assert row["calls"] == {"e1": 1, "e2": 1} and row["reward"] == 0.0  # 5 vs 8: e1's 8


def test_math_env_episodes_vote_on_the_paper_pool():
    env = gym.make("CORL-Math-v0", budget="high")
    rows = [run_episode(env, make_router("vote"), i, {"problem_index": i}) for i in range(10)]
    assert all(r["calls"] == {"gpt-4.1-nano": 1, "gpt-4.1": 1, "o3": 1} and r["turns"] == 4 for r in rows)


@pytest.fixture(scope="module")
def zeroeval(data_dir):
    import os

    os.environ.setdefault("CORL_DATA_DIR", str(data_dir))
    pool = load_pool("zeroeval-math-l5")
    train, test = split_problems(load_problems("zeroeval-math-l5"), 0.5)
    return pool, train, test


def test_plan_labels_match_what_the_plan_router_earns(zeroeval):
    pool, _, test = zeroeval
    problems = test[:25]
    plans, correct, cost = plan_labels(label_choices(pool, problems))
    assert len(plans) == 2 ** 5 and () in plans and ("gpt-4o-mini", "claude-3.5-haiku", "claude-3.5-sonnet") in plans
    knn = make_router("knn")
    env = CORLMathEnv(pool=pool, problems=problems, max_turns=6)
    rng = np.random.default_rng(0)
    for p in rng.choice(len(plans), size=8, replace=False):
        knn.plan = lambda info, plan=plans[p]: plan  # execute this plan in the env
        for i in range(len(problems)):
            row = run_episode(env, knn, i, {"problem_index": i, "budget": "high"})
            assert row["correct"] == correct[i, p] and row["cost_usd"] == pytest.approx(cost[i, p])
            assert row["calls"] == {name: int(name in plans[p]) for name in pool.experts}


def test_knn_chooses_aggregation(zeroeval):
    pool, train, test = zeroeval
    knn = make_router("knn").fit(pool, train)
    env = CORLMathEnv(pool=pool, problems=test[:40], max_turns=6)
    rows = [run_episode(env, knn, i, {"problem_index": i, "budget": "medium"}) for i in range(40)]
    assert max(sum(r["calls"].values()) for r in rows) >= 2  # it votes where voting paid in training
    assert all(r["calls"]["o1-mini"] == 0 for r in rows)  # never the top model at medium: it cannot afford it


def test_resumed_bench_with_aggregating_routers_equals_an_uninterrupted_one(zeroeval, tmp_path):
    config = BenchConfig(pools=["zeroeval-math-l5"], policies=["vote", "cascade-agree", "knn"], limit=12,
                         references=False, train_limit=60, out=str(tmp_path), progress=False)
    first = run_bench(config)
    path = tmp_path / "results.jsonl"
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:40]) + "\n")  # interrupted after 40 of 108 rows
    second = run_bench(config)
    key = lambda rows: sorted(json.dumps(r, sort_keys=True) for r in rows)  # noqa: E731
    assert len(first.rows) == 108 and key(second.rows) == key(first.rows)

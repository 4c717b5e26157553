"""Backend `replay` against the shipped LLMRouter file (data_dir) and small files written by the tests."""

from __future__ import annotations

import asyncio
import json
import statistics
import textwrap
from collections import defaultdict

import pytest

from corl_gym.data import Problem, load_problems
from corl_gym.experts import load_pool
from corl_gym.verify import Verdict, check_many, extract_answer

REPLAY = "replay/llmrouter_math_gsm8k.jsonl"


@pytest.fixture(scope="module")
def recorded(data_dir):
    table = defaultdict(dict)
    for line in (data_dir / REPLAY).open():
        row = json.loads(line)
        table[row["model"]][row["problem_id"]] = row["correct"]
    return table


@pytest.fixture()
def data_env(data_dir, monkeypatch):
    monkeypatch.setenv("CORL_DATA_DIR", str(data_dir))
    return data_dir


@pytest.mark.parametrize("pool_name, dataset, size", [("llmrouter-math", "llmrouter-math", 504),
                                                      ("llmrouter-gsm8k", "gsm8k", 550)])
def test_recorded_correctness_decides(data_env, recorded, pool_name, dataset, size):
    pool = load_pool(pool_name)
    problems = load_problems(pool.dataset)
    assert pool.dataset == dataset and len(problems) == size
    pool.check_covers(problems)
    for expert in [pool.controller, *pool.experts.values()]:
        replies = [expert.call(p.problem, p) for p in problems]
        verdicts = check_many([(extract_answer(r.text), p.answer) for r, p in zip(replies, problems)])
        labels = [recorded[expert.spec.model][p.id] for p in problems]
        assert [v == Verdict.CORRECT for v in verdicts] == labels, expert.name


def test_experts_ordered_by_price_and_budgets_scaled(data_env):
    pool = load_pool("llmrouter-math")
    prices = [e.spec.price_out for e in pool.experts.values()]
    assert prices == sorted(prices) and pool.controller.spec.price_out == 0.0
    problems = load_problems("llmrouter-math")
    cost = {name: statistics.mean(e.call(p.problem, p).cost_usd for p in problems) for name, e in pool.experts.items()}
    small, large = ("gemma-2-9b-it", "llama-3.1-8b-instruct"), ("llama-3.1-nemotron-51b-instruct",
                                                                 "llama-3.3-nemotron-super-49b-v1")
    assert all(2 * cost[n] < pool.budgets["low"] < cost[m] for n in small for m in large)
    assert all(cost[m] < pool.budgets["medium"] < 2 * cost[m] for m in large)
    assert all(3 * cost[m] < pool.budgets["high"] for m in large)


def test_cost_from_estimated_tokens(data_env):
    pool = load_pool("llmrouter-math")
    problem = load_problems("llmrouter-math", limit=1)[0]
    expert = pool.experts["llama-3.3-nemotron-super-49b-v1"]
    reply = expert.call("y" * 800, problem)
    assert (reply.prompt_tokens, reply.completion_tokens) == (800 // 4 + 16, 500)
    assert reply.cost_usd == pytest.approx((216 + 500) * 0.9 / 1e6)


def test_uncovered_problems_are_a_clear_error(data_env):
    pool = load_pool("llmrouter-math")
    math500 = load_problems("math500", limit=30)
    with pytest.raises(ValueError, match=r"30 of 30 problems \(math500-0, .*, \.\.\.\)"):
        pool.check_covers(math500)
    with pytest.raises(ValueError, match="no recorded result for problem 'math500-0'"):
        pool.experts["gemma-2-9b-it"].call("q", math500[0])
    [reply] = asyncio.run(pool.acall_many([("gemma-2-9b-it", "q", math500[0])]))  # never raises
    assert not reply.ok and "math500-0" in reply.error


def test_problem_matched_by_text_under_another_id(data_env):
    pool = load_pool("llmrouter-gsm8k")
    original = load_problems("gsm8k", limit=1)[0]
    renamed = Problem(id="hub-gsm8k-17", problem="  " + original.problem.replace(" ", "  ") + "\n",
                      answer=original.answer)
    pool.check_covers([renamed])
    expert = pool.experts["llama-3.1-8b-instruct"]
    assert expert.call("q", renamed).text == expert.call("q", original).text


def test_missing_data_dir_says_how_to_set_it(monkeypatch):
    monkeypatch.delenv("CORL_DATA_DIR", raising=False)
    with pytest.raises(ValueError, match="CORL_DATA_DIR.*export CORL_DATA_DIR="):
        load_pool("llmrouter-math")


def test_own_replay_file_relative_path_recorded_usage(tmp_path):
    rows = [
        {"problem_id": "p-0", "model": "big-v2", "correct": True, "answer": None, "prompt_tokens": 100,
         "completion_tokens": 50, "cost_usd": None},
        {"problem_id": "p-1", "model": "big-v2", "correct": False, "answer": "41", "prompt_tokens": None,
         "completion_tokens": None, "cost_usd": 0.5},
        {"problem_id": "p-2", "model": "big-v2", "correct": False, "answer": "7", "prompt_tokens": None,
         "completion_tokens": None, "cost_usd": None},
    ]
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "mine.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "pool.yaml").write_text(textwrap.dedent("""
        name: mine
        budgets: {low: 0.001, medium: 0.01, high: 0.05}
        controller: {name: self, backend: sim, model: s, price_in: 0, price_out: 0, skill: 1}
        experts:
          - {name: big, backend: replay, model: Big, replay_model: big-v2, file: runs/mine.jsonl,
             price_in: 1.0, price_out: 2.0, est_prompt_tokens: 30, est_completion_tokens: 70}
    """))
    pool = load_pool(str(tmp_path / "pool.yaml"))
    big = pool.experts["big"]
    right = big.call("q", Problem("p-0", "a", "42"))
    assert "\\boxed{42}" in right.text and (right.prompt_tokens, right.completion_tokens) == (100, 50)
    assert right.cost_usd == pytest.approx((100 * 1.0 + 50 * 2.0) / 1e6)
    recorded_wrong = big.call("q", Problem("p-1", "b", "42"))
    assert "\\boxed{41}" in recorded_wrong.text and recorded_wrong.cost_usd == 0.5
    assert (recorded_wrong.prompt_tokens, recorded_wrong.completion_tokens) == (30, 70)
    label_wins = big.call("q", Problem("p-2", "c", "7"))  # recorded answer equals gold, label says wrong
    assert check_many([(extract_answer(label_wins.text), "7")]) != [Verdict.CORRECT]
    (tmp_path / "bad.yaml").write_text((tmp_path / "pool.yaml").read_text().replace("big-v2", "small"))
    with pytest.raises(ValueError, match="no rows for model 'small'; models: big-v2"):
        load_pool(str(tmp_path / "bad.yaml"))


# ------------------------------------------------------------------------------- zeroeval-math-l5
ZEROEVAL = "replay/zeroeval_math_l5.jsonl"


@pytest.fixture(scope="module")
def zeroeval_rows(data_dir):
    return {(row["model"], row["problem_id"]): row for row in map(json.loads, (data_dir / ZEROEVAL).open())}


def test_zeroeval_replies_state_the_models_own_answers(data_env, zeroeval_rows):
    pool = load_pool("zeroeval-math-l5")
    problems = load_problems(pool.dataset)
    assert pool.dataset == "zeroeval-math-l5" and len(problems) == 721
    pool.check_covers(problems)
    for expert in [pool.controller, *pool.experts.values()]:
        rows = [zeroeval_rows[(expert.spec.model, p.id)] for p in problems]
        stated = [extract_answer(expert.call(p.problem, p).text) for p in problems]
        verdicts = check_many([(answer or "", p.answer) for answer, p in zip(stated, problems)])
        assert [v == Verdict.CORRECT for v in verdicts] == [row["correct"] for row in rows], expert.name
        for answer, row in zip(stated, rows):
            if not row["correct"] and not (row["answer"] or "").strip():
                assert answer is None  # the model stated no final answer, and neither does its replay
            elif not row["correct"] and answer is not None and "\\boxed" not in row["answer"]:
                assert answer == row["answer"].strip() or row["answer"].count("{") != row["answer"].count("}")


def test_zeroeval_tokens_and_costs(data_env, zeroeval_rows):
    pool = load_pool("zeroeval-math-l5")
    problem = load_problems(pool.dataset, limit=1)[0]
    for expert in pool.experts.values():
        row = zeroeval_rows[(expert.spec.model, problem.id)]
        reply = expert.call("any query", problem)
        assert reply.prompt_tokens == row["est_prompt_tokens"] and row["completion_tokens"] is None
        # the rows' visible-text estimate, except o1-mini's entry, whose own estimate adds its hidden reasoning
        assert reply.completion_tokens == (2500 if expert.name == "o1-mini" else row["est_completion_tokens"])
        assert reply.cost_usd == pytest.approx(expert.spec.cost(reply.prompt_tokens, reply.completion_tokens))


def test_zeroeval_budgets_follow_the_price_ladder(data_env):
    pool = load_pool("zeroeval-math-l5")
    problems = load_problems(pool.dataset)
    expected = {n: statistics.mean(e.spec.expected_cost(p.problem) for p in problems) for n, e in pool.experts.items()}
    paid = {n: statistics.mean(e.call(p.problem, p).cost_usd for p in problems) for n, e in pool.experts.items()}
    assert list(expected) == sorted(expected, key=expected.get)  # pool order is the price ladder
    low, medium, high = (pool.budgets[m] for m in ("low", "medium", "high"))
    for costs in (expected, paid):
        assert costs["gpt-4o-mini"] < low < min(c for n, c in costs.items() if n != "gpt-4o-mini")  # the cheapest only
        mid = sum(c for n, c in costs.items() if n != "o1-mini")
        assert mid < medium < costs["o1-mini"] < high  # several mid-tier calls, not the top model; high affords it


def _replay_pool(tmp_path, rows, **entry):
    (tmp_path / "r.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    options = ", ".join(f"{k}: {v}" for k, v in entry.items())
    extra = ", " + options if options else ""
    (tmp_path / "pool.yaml").write_text(textwrap.dedent(f"""
        name: mine
        budgets: {{low: 0.001, medium: 0.01, high: 0.05}}
        controller: {{name: self, backend: sim, model: s, price_in: 0, price_out: 0, skill: 1}}
        experts:
          - {{name: m, backend: replay, model: m, file: r.jsonl, price_in: 1.0, price_out: 2.0{extra}}}
    """))
    return load_pool(str(tmp_path / "pool.yaml")).experts["m"]


def _row(pid, correct, answer, **extra):
    return {"problem_id": pid, "model": "m", "correct": correct, "answer": answer, "prompt_tokens": None,
            "completion_tokens": None, "cost_usd": None, **extra}


def test_token_counts_recorded_then_entry_estimate_then_row_estimate_then_default(tmp_path):
    rows = [_row("a", True, "1", prompt_tokens=11, completion_tokens=22, est_prompt_tokens=3, est_completion_tokens=4),
            _row("b", True, "1", est_prompt_tokens=33, est_completion_tokens=44), _row("c", True, "1")]
    problems = {pid: Problem(pid, "x" * 400, "1") for pid in "abc"}
    plain = _replay_pool(tmp_path, rows)
    tokens = {pid: (r.prompt_tokens, r.completion_tokens) for pid in "abc" for r in [plain.call("q", problems[pid])]}
    assert tokens == {"a": (11, 22), "b": (33, 44), "c": (len("q") // 4 + 16, 350)}
    entry = _replay_pool(tmp_path, rows, est_prompt_tokens=55, est_completion_tokens=66)
    tokens = {pid: (r.prompt_tokens, r.completion_tokens) for pid in "abc" for r in [entry.call("q", problems[pid])]}
    assert tokens == {"a": (11, 22), "b": (55, 66), "c": (55, 66)}


def test_wrong_replies_box_the_recorded_answer_unless_it_is_right_or_missing(tmp_path):
    rows = [_row("a", False, "41"), _row("b", False, "7.0"), _row("c", False, None), _row("d", False, "  "),
            _row("e", False, "\\frac{14}{2}"), _row("f", True, None)]
    expert = _replay_pool(tmp_path, rows)
    stated = {pid: extract_answer(expert.call("q", Problem(pid, "p", "7")).text) for pid in "abcdef"}
    assert stated["a"] == "41" and stated["f"] == "7"
    assert stated["c"] is None and stated["d"] is None  # no final answer recorded: the reply states none
    for pid in "be":  # recorded answers equivalent to the gold one under a label that says wrong: the label wins
        assert stated[pid] is not None and check_many([(stated[pid], "7")]) != [Verdict.CORRECT]
    scores_only = _replay_pool(tmp_path, [_row("a", False, None), _row("b", True, None)])  # records no answers at all
    wrong = extract_answer(scores_only.call("q", Problem("a", "p", "7")).text)
    assert wrong is not None and check_many([(wrong, "7")]) == [Verdict.WRONG]


def test_bad_row_estimates_name_the_file_and_line(tmp_path):
    with pytest.raises(ValueError, match=r"r.jsonl:2: .*`est_completion_tokens` must be a non-negative integer"):
        _replay_pool(tmp_path, [_row("a", True, "1"), _row("b", True, "1", est_completion_tokens=-3)])

"""`corl-gym record`: live experts (the loopback server) over a dataset -> a replay file in the replay
schema, that a `replay` pool then replays; resume, failed calls, the spend cap."""

from __future__ import annotations

import json

import pytest

from corl_gym import cli, verify
from corl_gym.data import load_problems
from corl_gym.envs.math_env import CORLMathEnv
from corl_gym.experts import load_pool
from corl_gym.experts.fake_server import ChatServer
from corl_gym.protocol import stated_answer

PROBLEMS = load_problems("synthetic", limit=6)
SCHEMA = {"problem_id", "model", "correct", "answer", "prompt_tokens", "completion_tokens", "cost_usd", "source"}


def _reply(body) -> str:
    """`m-right` answers every problem correctly, `m-wrong` none, from the problem text in the query."""
    query = body["messages"][-1]["content"]
    problem = next(p for p in PROBLEMS if p.problem in query)
    return f"Working... \\boxed{{{problem.answer}}}" if body["model"] == "m-right" else "Working... \\boxed{-12345}"


@pytest.fixture()
def server():
    with ChatServer(reply_fn=_reply, max_requests=100, lifetime_s=60) as running:
        yield running


def _live_pool(tmp_path, server, models=("right", "wrong")) -> str:
    entries = ", ".join(
        f"{{name: {m}, backend: openai, model: {m if m.startswith('fail') else 'm-' + m}, price_in: 1, price_out: 4,"
        f" max_tokens: 256, base_url: '{server.base_url}',"
        f" api_key_env: null, timeout: 30, max_retries: 1, backoff_base_s: 0.01}}" for m in models)
    path = tmp_path / "live.yaml"
    path.write_text("name: live\ndataset: synthetic\nbudgets: {low: 0.001, medium: 0.01, high: 1}\n"
                    "controller: {name: self, backend: sim, model: s, price_in: 0, price_out: 0, accuracy: {1: 0.5}}\n"
                    f"experts: [{entries}]\n")
    return str(path)


def _rows(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_record_writes_a_replay_file_that_a_replay_pool_replays(tmp_path, server, capsys):
    out = tmp_path / "rec" / "recorded.jsonl"
    code = cli.main(["record", "--pool", _live_pool(tmp_path, server), "--dataset", "synthetic", "--limit", "6",
                     "--out", str(out)])
    assert code == 0 and "wrote 12 rows" in capsys.readouterr().out
    rows = _rows(out)
    assert len(rows) == 12 and all(set(row) == SCHEMA for row in rows)
    by_model = {m: [r for r in rows if r["model"] == m] for m in ("m-right", "m-wrong")}
    assert all(r["correct"] for r in by_model["m-right"]) and not any(r["correct"] for r in by_model["m-wrong"])
    assert all(r["cost_usd"] > 0 and r["prompt_tokens"] > 0 for r in rows)
    assert by_model["m-wrong"][0]["answer"] == "-12345"
    problems = _rows(out.with_name("recorded_problems.jsonl"))
    assert [p["problem_id"] for p in problems] == [p.id for p in PROBLEMS]
    ledger = json.loads(out.with_name("recorded.ledger.json").read_text())
    assert ledger["calls"] == 12 and ledger["spend_usd"] == pytest.approx(sum(r["cost_usd"] for r in rows))

    replay = tmp_path / "rec" / "replayed.yaml"
    replay.write_text(
        "name: replayed\ndataset: synthetic\nbudgets: {low: 0.001, medium: 0.01, high: 1}\n"
        "controller: {name: self, backend: sim, model: s, price_in: 0, price_out: 0, accuracy: {1: 0.5}}\n"
        "experts:\n"
        "  - {name: right, backend: replay, model: m-right, price_in: 1, price_out: 4, file: recorded.jsonl}\n"
        "  - {name: wrong, backend: replay, model: m-wrong, price_in: 1, price_out: 4, file: recorded.jsonl}\n")
    pool = load_pool(str(replay))
    pool.check_covers(PROBLEMS)
    for row in rows:
        problem = next(p for p in PROBLEMS if p.id == row["problem_id"])
        reply = pool.get("right" if row["model"] == "m-right" else "wrong").call(problem.problem, problem)
        correct = verify.check(stated_answer(reply.text), problem.answer) is verify.Verdict.CORRECT
        assert correct == row["correct"] and reply.cost_usd == pytest.approx(row["cost_usd"])
    env = CORLMathEnv(pool=str(replay), problems=PROBLEMS, budget="high")
    env.reset(seed=0, options={"problem_index": 0})
    _, _, _, _, info = env.step('<call expert="right">solve it</call>')
    first = next(r for r in by_model["m-right"] if r["problem_id"] == PROBLEMS[0].id)  # rows come as calls end
    assert info["expert_error"] is None and info["step_cost_usd"] == pytest.approx(first["cost_usd"])


def test_record_resumes_and_skips_failed_calls(tmp_path, server):
    pool = _live_pool(tmp_path, server, models=("right", "fail500"))
    out = tmp_path / "r.jsonl"
    assert cli.main(["record", "--pool", pool, "--dataset", "synthetic", "--limit", "3", "--out", str(out)]) == 0
    assert [r["model"] for r in _rows(out)] == ["m-right"] * 3  # the failing expert wrote nothing
    ledger = json.loads((tmp_path / "r.ledger.json").read_text())
    assert ledger["failures"] == {"server_error": 3} and ledger["max_attempts"] == 2
    with open(out, "a") as handle:
        handle.write('{"problem_id": "cut sh')  # an interrupted run's last line
    before = len(server.requests)
    assert cli.main(["record", "--pool", pool, "--dataset", "synthetic", "--limit", "4", "--out", str(out),
                     "--experts", "right"]) == 0
    assert len(server.requests) == before + 1 and len(_rows(out)) == 4  # only the new problem was paid for


def test_record_stops_at_the_spend_cap(tmp_path, server, capsys):
    out = tmp_path / "capped.jsonl"
    # a call may cost up to (2 x ~60 prompt tokens) x $1/1M + 256 x $4/1M, about $0.0011: two fit, not three
    code = cli.main(["record", "--pool", _live_pool(tmp_path, server), "--dataset", "synthetic", "--limit", "6",
                     "--out", str(out), "--max-spend", "0.0025", "--chunk", "4"])
    assert code == 3 and "spend cap" in capsys.readouterr().err
    rows = _rows(out)
    assert len(rows) == 2 and len(server.requests) == 2
    assert json.loads((tmp_path / "capped.ledger.json").read_text())["spend_usd"] <= 0.0025


def test_record_flags_are_its_own(capsys):
    with pytest.raises(SystemExit):
        cli.main(["record", "--pool", "sim-paper"])  # --dataset and --out are required
    assert "--dataset" in capsys.readouterr().err

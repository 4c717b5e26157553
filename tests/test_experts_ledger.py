"""The run ledger and the spend cap: the reservation rule, a capped batch against the loopback server,
and the bench's `ledger.json`, `--max-spend` (a clean stop that keeps rows and resumes) and cache flags."""

from __future__ import annotations

import json

import pytest

from corl_gym import cli
from corl_gym.benchmarks.bench import BenchConfig, run_bench
from corl_gym.data import Problem
from corl_gym.experts import ExpertReply, Ledger, load_pool
from corl_gym.experts.fake_server import ChatServer

PROBLEM = Problem(id="t-0", problem="What is 1+1?", answer="2", level=1)


def test_reservation_rule_refuses_a_call_that_could_pass_the_cap():
    ledger = Ledger(max_spend_usd=1.0)
    first = ledger.reserve("p/a", 0.6)
    assert first and ledger.reserved_usd == 0.6
    assert ledger.reserve("p/a", 0.5) is None  # 0.6 reserved + 0.5 > 1.0: refused before it is made
    assert ledger.stopped and "spend cap $1.000000" in ledger.stop_reason
    assert ledger.reserve("p/b", 0.01) is None  # once stopped, every further call is refused
    ledger.record("p/a", ExpertReply(text="x", cost_usd=0.25, attempts=3), first)  # settles the reservation
    assert ledger.reserved_usd == 0.0
    ledger.record("p/a", ExpertReply(text="", error="boom", error_kind="timeout", attempts=2))
    ledger.record("p/a", ExpertReply(text="x", cost_usd=0.5, cached=True, attempts=0))
    book = ledger.to_dict()
    assert book["spend_usd"] == 0.25 and book["cached_saved_usd"] == 0.5 and book["cached_hits"] == 1
    assert (book["calls"], book["requests"], book["retries"], book["max_attempts"]) == (3, 5, 3, 3)
    assert book["failures"] == {"timeout": 1} and book["refused"] == 2 and book["stopped"]
    with pytest.raises(ValueError):
        Ledger(-1)


def test_capped_batch_makes_only_the_calls_the_cap_affords(tmp_path):
    with ChatServer(max_requests=50, lifetime_s=30) as server:
        entry = ("{name: a, backend: openai, model: m, price_in: 0, price_out: 1000, max_tokens: 100, base_url: '"
                 + server.base_url + "', api_key_env: null, timeout: 30, max_retries: 0}")
        path = tmp_path / "pool.yaml"
        path.write_text("name: lb\nbudgets: {low: 1, medium: 1, high: 1}\n"
                        "controller: {name: self, backend: sim, model: s, price_in: 0, price_out: 0, "
                        "accuracy: {1: 0.5}}\n"
                        f"experts: [{entry}]\n")
        ledger = Ledger(max_spend_usd=0.35)  # each call may cost up to 100 tokens x $1000/1M = $0.10
        pool = load_pool(str(path), ledger=ledger)
        replies = pool.call_many([("a", f"q{i}", PROBLEM) for i in range(10)])
        assert sum(r.ok for r in replies) == 3 and len(server.requests) == 3
        assert {r.error_kind for r in replies if not r.ok} == {"spend_cap"}
        book = ledger.to_dict()
        assert book["stopped"] and book["refused"] == 7 and 0 < book["spend_usd"] <= 0.35


def test_bench_writes_the_ledger(tmp_path):
    result = run_bench(BenchConfig(policies=["always:gpt-4.1-nano", "always:o3"], budgets=["high"], limit=4,
                                   out=str(tmp_path), progress=False))
    book = json.loads((tmp_path / "ledger.json").read_text())
    assert result.stopped is None and not book["stopped"] and book["spend_usd"] > 0
    assert book["experts"]["sim-paper/o3"]["calls"] >= 4 and book["experts"]["sim-paper/gpt-4.1-nano"]["calls"] >= 4
    rows_cost = sum(row["cost_usd"] for row in result.rows)
    assert book["spend_usd"] >= rows_cost - 1e-12  # the episodes' calls plus the oracle frontier's labels


def test_bench_max_spend_stops_cleanly_and_resumes(tmp_path):
    config = dict(policies=["always:o3"], budgets=["high"], limit=10, out=str(tmp_path), progress=False,
                  references=False)
    stopped = run_bench(BenchConfig(**config, max_spend=0.1))
    book = json.loads((tmp_path / "ledger.json").read_text())
    assert stopped.stopped and book["stopped"] and book["refused"] >= 1
    kept = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert 0 < len(kept) < 10 and all(row["calls"]["o3"] >= 1 for row in kept)
    assert all(row["cost_usd"] > 0 for row in kept)  # no kept episode met a refused (free) call
    resumed = run_bench(BenchConfig(**config))
    assert resumed.stopped is None and len(resumed.rows) == 10
    assert [r["problem_id"] for r in resumed.rows[: len(kept)]] == [r["problem_id"] for r in kept]


def test_cli_bench_flags_and_exit_code(tmp_path, capsys):
    code = cli.main(["bench", "--policies", "always:o3", "--budgets", "high", "--limit", "6", "--quiet",
                     "--out", str(tmp_path), "--max-spend", "0.05", "--cache", str(tmp_path / "c.sqlite"),
                     "--cache-mode", "read-write"])
    captured = capsys.readouterr()
    assert code == 3 and "stopped early: spend cap" in captured.err and "ledger.json" in captured.out
    assert json.loads((tmp_path / "ledger.json").read_text())["max_spend_usd"] == 0.05
    with pytest.raises(SystemExit):
        cli.main(["bench", "--cache-mode", "sometimes"])


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -1.0, 10**400])
def test_a_bad_amount_never_poisons_the_spend_or_the_cap(bad):
    ledger = Ledger(max_spend_usd=1.5)
    forged = ExpertReply(text="x", cost_usd=0.5)
    object.__setattr__(forged, "cost_usd", bad)
    object.__setattr__(forged, "prompt_tokens", bad)
    ledger.record("p/a", forged)  # booked without its unusable amounts
    ledger.record("p/a", ExpertReply(text="", error="x", error_kind=3))  # a non-str kind still counts
    ledger.record("p/a", ExpertReply(text="", error="y", error_kind="rate_limit"))
    book = ledger.to_dict()
    assert book["spend_usd"] == 0.0 and book["calls"] == 3 and book["failures"] == {"3": 1, "rate_limit": 1}
    assert ledger.reserve("p/a", 1.0) and ledger.reserve("p/a", 1.0) is None  # the cap still holds
    assert isinstance(ledger.summary(), str)


class _UnshowableNumber(float):
    def __repr__(self):  # an untrusted value whose repr fails must not make the check fail
        raise RuntimeError("no repr")


@pytest.mark.parametrize("field, bad", [
    ("cost_usd", float("nan")), ("cost_usd", 10**400), ("prompt_tokens", float("nan")),
    ("completion_tokens", -5), ("attempts", "2"), ("error_kind", 3),
    pytest.param("cost_usd", -10**5000, id="cost_usd-5000-digit-int"),
    pytest.param("prompt_tokens", _UnshowableNumber(-1.0), id="prompt_tokens-no-repr"),
])
def test_checked_reply_turns_bad_amounts_into_a_bad_response(field, bad):
    from corl_gym.experts.base import checked_reply

    reply = ExpertReply(text="\\boxed{7}", prompt_tokens=3, completion_tokens=4, cost_usd=0.01,
                        error="e" if field == "error_kind" else None)
    object.__setattr__(reply, field, bad)
    checked = checked_reply(reply, "x")
    for key in ("cost_usd", "prompt_tokens", "completion_tokens", "attempts"):
        value = getattr(checked, key)
        assert not isinstance(value, bool) and value >= 0 and value == value and value < float("inf")
    assert isinstance(checked.error_kind, str) and isinstance(checked.error, str)
    if field != "error_kind":
        assert checked.error_kind == "bad_response" and field in checked.error


def test_billable_reply_is_checked_reply_plus_a_cost_the_running_total_can_take():
    from corl_gym.experts.base import billable_reply, checked_reply

    reply = ExpertReply(text="\\boxed{7}", prompt_tokens=3, completion_tokens=4, cost_usd=1e308)
    assert billable_reply(reply, "x", 0.0) is reply is checked_reply(reply, "x")  # the total stays finite
    over = billable_reply(reply, "x", 1e308)  # 1e308 + 1e308 overflows: charged $0, the tokens kept
    assert over.cost_usd == 0.0 and over.error_kind == "bad_response" and "overflows" in over.error
    assert (over.prompt_tokens, over.completion_tokens, over.text) == (3, 4, reply.text)
    bad = ExpertReply(text="", cost_usd=0.01)
    object.__setattr__(bad, "prompt_tokens", float("nan"))
    assert billable_reply(bad, "x", 1.0) == checked_reply(bad, "x")  # the base rules, unchanged


# ------------------------------------------------------------------ the cap holds: worst case, totals, kill -9
def _openai_pool(tmp_path, server, entry_options: str = "") -> str:
    entry = ("{name: a, backend: openai, model: m, price_in: 1, price_out: 1, base_url: '" + server.base_url
             + "', api_key_env: null, timeout: 30, max_retries: 0" + entry_options + "}")
    path = tmp_path / "billing.yaml"
    path.write_text("name: lb\ndataset: synthetic\nbudgets: {low: 1, medium: 1, high: 1}\n"
                    "controller: {name: self, backend: sim, model: s, price_in: 0, price_out: 0, accuracy: {1: 0.5}}\n"
                    f"experts: [{entry}]\n")
    return str(path)


def test_an_entry_without_max_tokens_reserves_the_cap_it_sends_even_for_a_concurrent_batch(tmp_path):
    # The server bills 4,000 completion tokens a reply ($0.004 at $1/1M); the entry sets no max_tokens, so
    # 4,096 are sent and reserved: a $0.01 cap affords two calls in flight, never more.
    with ChatServer(bill_completion_tokens=4000, max_requests=50, lifetime_s=30) as server:
        ledger = Ledger(max_spend_usd=0.01)
        pool = load_pool(_openai_pool(tmp_path, server), ledger=ledger)
        replies = pool.call_many([("a", f"q{i}", PROBLEM) for i in range(20)])  # 20 at once
        assert sum(r.ok for r in replies) == len(server.requests) == 2
        assert server.requests and all(r.completion_tokens == 4000 for r in replies if r.ok)
        assert ledger.spend_usd <= 0.01 and ledger.stopped and ledger.to_dict()["refused"] == 18
        pool.close()


def test_record_against_a_billing_heavy_server_never_passes_the_cap(tmp_path, capsys):
    with ChatServer(bill_completion_tokens=4000, max_requests=50, lifetime_s=30) as server:
        out = tmp_path / "rec.jsonl"
        code = cli.main(["record", "--pool", _openai_pool(tmp_path, server), "--dataset", "synthetic", "--limit", "12",
                         "--out", str(out), "--max-spend", "0.01"])
        book = json.loads((tmp_path / "rec.ledger.json").read_text())
        assert code == 3 and "spend cap" in capsys.readouterr().err
        assert 0 < book["spend_usd"] <= 0.01 and len(server.requests) == len(out.read_text().splitlines()) == 2


def test_extra_params_cannot_lift_the_completion_cap(tmp_path):
    with ChatServer(lifetime_s=5) as server:
        with pytest.raises(ValueError, match="may not set max_tokens"):
            load_pool(_openai_pool(tmp_path, server, ", extra_params: {max_completion_tokens: 100000}"))


def test_the_ledger_adds_up_over_reruns_and_the_cap_counts_the_total(tmp_path):
    config = dict(policies=["always:o3"], budgets=["high"], limit=30, out=str(tmp_path), progress=False)
    for _ in range(3):
        assert run_bench(BenchConfig(**config, max_spend=0.1)).stopped
    rows = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
    book = json.loads((tmp_path / "ledger.json").read_text())
    assert book["runs"] == 3 and book["this_run"]["spend_usd"] == 0 and book["this_run"]["refused"] >= 1
    assert sum(row["cost_usd"] for row in rows) == pytest.approx(book["spend_usd"]) and book["spend_usd"] <= 0.1
    assert book["experts"]["sim-paper/o3"]["calls"] == len(rows)  # every run's calls, once each
    run_scope = run_bench(BenchConfig(**config, max_spend=0.1, max_spend_scope="run"))
    book = json.loads((tmp_path / "ledger.json").read_text())
    assert book["runs"] == 4 and 0 < book["this_run"]["spend_usd"] <= 0.1 < book["spend_usd"]
    assert run_scope.stopped and book["max_spend_scope"] == "run"


def test_a_run_that_died_leaves_its_spend_and_its_calls_in_flight_for_the_next(tmp_path):
    path = tmp_path / "ledger.json"
    dead = Ledger(max_spend_usd=1.0, path=path)
    dead.record("p/a", ExpertReply(text="x", cost_usd=0.25), dead.reserve("p/a", 0.3))
    dead.reserve("p/a", 0.4)  # in flight when the process is killed: no close(), no final write
    dead.record("p/a", ExpertReply(text="x", cost_usd=0.01, cached=True))
    with open(tmp_path / "ledger.json.journal", "a") as journal:
        journal.write('{"reserve": 99, "expe')  # cut mid-write by kill -9
    after = Ledger(max_spend_usd=1.0, path=path)
    assert after.earlier_spend_usd == pytest.approx(0.65) and after.runs_before == 1
    assert after.reserve("p/a", 0.4) is None  # 0.65 spent or at risk + 0.4 > 1.0
    after.close()
    book = json.loads(path.read_text())
    assert book["spend_usd"] == pytest.approx(0.65) and book["in_flight_at_exit_usd"] == pytest.approx(0.4)
    assert book["calls"] == 2 and book["cached_hits"] == 1 and book["runs"] == 2 and book["refused"] == 1
    assert not (tmp_path / "ledger.json.journal").exists()
    assert Ledger(path=path).earlier_spend_usd == pytest.approx(0.65)  # a clean end: the file alone


def test_a_damaged_ledger_file_is_an_error_not_a_fresh_count(tmp_path):
    (tmp_path / "ledger.json").write_text('{"spend_usd": 1.0, "experts": {"a": {"spend_usd": "lots"}}}')
    with pytest.raises(ValueError, match="ledger.json.*spend_usd"):
        run_bench(BenchConfig(policies=["always-self"], budgets=["low"], limit=1, out=str(tmp_path), progress=False))
    (tmp_path / "ledger.json").write_text("{not json")
    with pytest.raises(ValueError, match="not a ledger file"):
        Ledger(path=tmp_path / "ledger.json")


def test_a_replay_only_miss_stops_the_bench_with_an_error(tmp_path, capsys):
    with ChatServer(max_requests=50, lifetime_s=30) as server:
        code = cli.main(["bench", "--pool", _openai_pool(tmp_path, server), "--policies", "always:a",
                         "--budgets", "high", "--limit", "3", "--quiet", "--out", str(tmp_path / "out"),
                         "--cache", str(tmp_path / "c.sqlite"), "--cache-mode", "replay-only"])
        err = capsys.readouterr().err
        assert code == 3 and "cache miss in replay-only mode" in err and "--cache-mode read-write" in err
        assert not server.requests and (tmp_path / "out" / "results.jsonl").read_text() == ""  # no miss became a row

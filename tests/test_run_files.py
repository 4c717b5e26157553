"""Long runs on their output files: one writer per output (an OS lock that kill -9 cannot leave stale),
rows that resume exactly (a cut last line, a damaged line, duplicates), a clean stop on SIGINT and SIGTERM,
and `record` writing each row the moment its call ends. Runs that must die are child processes; every
wait is for an event (a line on a pipe, a row in a file), never a fixed sleep."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from corl_gym import cli
from corl_gym.benchmarks.bench import BenchConfig, run_bench
from corl_gym.experts.fake_server import ChatServer
from corl_gym.run_files import OutputBusy, RowWriter, WriterLock, resume_rows

KEYS = ("k",)
WAIT_S = 120  # the most any wait below may take; they end as soon as what they wait for happens


def _wait_for(condition, what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.02)


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def _child(args: list[str], **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            **kwargs)


# ------------------------------------------------------------------------------------------ rows
def test_a_cut_last_line_is_cut_off_and_reported(tmp_path, caplog):
    path = tmp_path / "rows.jsonl"
    path.write_text('{"k": 1}\n{"k": 2}\n{"k": 3, "cut sh')
    assert [r["k"] for r in resume_rows(path, KEYS)] == [1, 2]
    assert "cut off a partial last line" in caplog.text and path.read_text() == '{"k": 1}\n{"k": 2}\n'
    with RowWriter(path) as writer:
        writer.write({"k": 3})
    assert [r["k"] for r in resume_rows(path, KEYS)] == [1, 2, 3]  # the next row starts on its own line


@pytest.mark.parametrize("bad, message", [("123", "must be a JSON object"), ("[1]", "must be a JSON object"),
                                          ("{oops", "not valid JSON"), ('{"x": 1}', "without k")])
def test_a_damaged_line_is_an_error_naming_file_and_line(tmp_path, bad, message):
    path = tmp_path / "rows.jsonl"
    path.write_text(f'{{"k": 1}}\n{bad}\n{{"k": 2}}\n')
    with pytest.raises(ValueError, match=f"rows.jsonl, line 2: .*{message}"):
        resume_rows(path, KEYS)


def test_duplicate_keys_are_dropped_with_a_warning(tmp_path, caplog):
    path = tmp_path / "rows.jsonl"
    path.write_text('{"k": 1, "v": "first"}\n{"k": 2}\n{"k": 1, "v": "second"}\n')
    rows = resume_rows(path, KEYS)
    assert [(r["k"], r.get("v")) for r in rows] == [(1, "first"), (2, None)] and "line 3: a second row" in caplog.text


def test_a_bench_resumes_over_a_damaged_results_file_without_counting_twice(tmp_path):
    config = BenchConfig(policies=["always:gpt-4.1-nano"], budgets=["low"], limit=5, out=str(tmp_path), progress=False,
                         references=False)
    first = run_bench(config)
    path = tmp_path / "results.jsonl"
    lines = _lines(path)
    path.write_text("\n".join(lines + lines[:2]) + "\n" + lines[2][:30])  # two writers' duplicates, a cut line
    second = run_bench(config)
    assert len(second.rows) == 5 and second.markdown == first.markdown
    path.write_text(lines[0] + "\n123\n")
    with pytest.raises(ValueError, match="results.jsonl, line 2: a row must be a JSON object"):
        run_bench(config)


# ------------------------------------------------------------------------------------- one writer
HOLD = (
    "import sys, time; from corl_gym.run_files import WriterLock; "
    "WriterLock(sys.argv[1], 'x').__enter__(); print('held', flush=True); time.sleep(600)"
)


def _holder(lock: Path) -> subprocess.Popen:
    holder = _child(["-c", HOLD, str(lock)])
    assert holder.stdout.readline().strip() == "held"
    return holder


def test_a_second_writer_fails_at_once_naming_the_first_and_kill_9_leaves_no_stale_lock(tmp_path):
    lock = tmp_path / "out.lock"
    holder = _holder(lock)
    try:
        with pytest.raises(OutputBusy, match=f"being written by another run \\(pid {holder.pid}\\)"):
            WriterLock(lock, "the output").__enter__()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    with WriterLock(lock, "the output"):  # the OS released the dead holder's lock
        assert lock.read_text().strip() == str(os.getpid())


def test_two_benches_on_one_out_and_two_recordings_of_one_file_are_refused(tmp_path, capsys):
    out = tmp_path / "bench"
    holder = _holder(out / ".lock")
    try:
        assert cli.main(["bench", "--policies", "always-self", "--budgets", "low", "--limit", "2", "--quiet",
                         "--out", str(out)]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and f"pid {holder.pid}" in err and not (out / "results.jsonl").exists()
    finally:
        holder.kill()
        holder.wait()
    recording = tmp_path / "rec.jsonl"
    holder = _holder(tmp_path / "rec.jsonl.lock")
    try:
        assert cli.main(["record", "--pool", "sim-paper", "--dataset", "synthetic", "--limit", "2",
                         "--out", str(recording)]) == 2
        assert f"pid {holder.pid}" in capsys.readouterr().err and not recording.exists()
    finally:
        holder.kill()
        holder.wait()


# ------------------------------------------------------------------------------- signals and kill -9
SLOW_POOL = (
    "name: slow\n"
    "dataset: synthetic\n"
    "budgets: {{low: 1, medium: 1, high: 1}}\n"
    "controller: {{name: self, backend: sim, model: s, price_in: 0, price_out: 0, accuracy: {{1: 0.5}}}}\n"
    "experts:\n"
    "  - {{name: fast, backend: openai, model: m-fast, price_in: 1, price_out: 4, base_url: '{url}',"
    " api_key_env: null, timeout: 600, max_retries: 0}}\n"
    "  - {{name: slow, backend: openai, model: slow, price_in: 1, price_out: 4, base_url: '{url}',"
    " api_key_env: null, timeout: 600, max_retries: 0}}\n"
)


@pytest.fixture()
def slow_server():
    """`fast` answers at once; `slow` takes 10 minutes (a call that is in flight when the run is stopped)."""
    with ChatServer(slow_s=600, max_requests=200, lifetime_s=300) as server:
        yield server


def _slow_pool(tmp_path: Path, server: ChatServer) -> str:
    path = tmp_path / "slow.yaml"
    path.write_text(SLOW_POOL.format(url=server.base_url))
    return str(path)


def _record_child(tmp_path: Path, server: ChatServer, out: Path) -> tuple[subprocess.Popen, list[str]]:
    args = ["record", "--pool", _slow_pool(tmp_path, server), "--dataset", "synthetic", "--limit", "6",
            "--out", str(out)]
    return _child(["-m", "corl_gym.cli", *args]), args


def test_record_writes_each_row_as_its_call_ends_so_kill_9_loses_only_calls_in_flight(tmp_path, slow_server):
    out = tmp_path / "rec.jsonl"
    child, _ = _record_child(tmp_path, slow_server, out)
    try:  # the 6 fast calls end at once; the 6 slow ones are still in flight in the same chunk
        _wait_for(lambda: len(_lines(out)) == 6 and len(slow_server.requests) == 12, "the fast rows")
    finally:
        child.kill()
        child.wait()
    rows = [json.loads(line) for line in _lines(out)]
    assert {r["model"] for r in rows} == {"m-fast"} and len({r["problem_id"] for r in rows}) == 6
    assert (tmp_path / "rec.ledger.json.journal").exists()  # the dead run's spend, for the next run to fold in


def test_sigterm_stops_record_cleanly_with_a_resume_line(tmp_path, slow_server):
    out = tmp_path / "rec.jsonl"
    child, args = _record_child(tmp_path, slow_server, out)
    _wait_for(lambda: len(_lines(out)) == 6 and len(slow_server.requests) == 12, "the fast rows")
    child.send_signal(signal.SIGTERM)
    _, err = child.communicate(timeout=WAIT_S)
    assert child.returncode == 143 and "Traceback" not in err
    line = err.strip().splitlines()[-1]
    assert "interrupted by SIGTERM" in line and line.endswith("Resume with: corl-gym " + " ".join(args))
    book = json.loads((tmp_path / "rec.ledger.json").read_text())
    assert book["calls"] == 6 and not (tmp_path / "rec.ledger.json.journal").exists() and len(_lines(out)) == 6
    assert book["in_flight_at_exit_usd"] > 0  # the 6 abandoned slow calls, at their reserved worst case


def test_sigint_stops_bench_cleanly_with_a_resume_line(tmp_path, slow_server):
    out = tmp_path / "bench"
    args = ["bench", "--pool", _slow_pool(tmp_path, slow_server), "--policies", "always:fast,always:slow",
            "--budgets", "high", "--limit", "4", "--quiet", "--out", str(out)]
    child = _child(["-m", "corl_gym.cli", *args])
    _wait_for(lambda: len(_lines(out / "results.jsonl")) == 4 and len(slow_server.requests) == 5, "the fast rows")
    child.send_signal(signal.SIGINT)  # the first slow call is in flight
    _, err = child.communicate(timeout=WAIT_S)
    assert child.returncode == 130 and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert err.strip().endswith("Resume with: corl-gym " + " ".join(args))
    book = json.loads((out / "ledger.json").read_text())
    assert book["experts"]["slow/fast"]["calls"] == 4 and book["experts"]["slow/slow"]["in_flight_at_exit_usd"] > 0
    assert not (out / "ledger.json.journal").exists()

"""Chaos runs: are money and results ever overspent, lost, duplicated or changed by a restart?

    python -m corl_gym.benchmarks.chaos [--fast] [--seed 0] [--only kill-bench,cut-line,...]

Each scenario runs the real command line (`python -m corl_gym.cli bench|record`) in child processes,
against a simulated pool or a loopback OpenAI-compatible server (`corl_gym.experts.fake_server`), does
to it what a careless user or a bad day would, and checks the files it leaves:

- `kill -9 x K`: a run killed with SIGKILL at K random points (after a random number of rows, plus a random
  few milliseconds), resumed each time, then run to the end; its rows must equal, byte for byte, those
  of one uninterrupted run (bench with a sim pool; record against the server).
- `kill -9 x K, capped`: the same for a recording under `--max-spend`, resumed until the cap stops it:
  the ledger's total (the dead runs' calls in flight counted at their reserved worst case) stays under it.
- `two writers`: two runs started at once on one output: one writes, the other exits 2 at once.
- `cut line`, `non-object line`: a results file whose last line was cut mid-write resumes to the full
  rows; a line that is valid JSON but not an object is an error naming file and line (exit 2).
- `rerun with a cap`: three reruns into one output with the same `--max-spend`: the total stays under it.
- `replay-only miss`: `--cache-mode replay-only` on an empty cache: exit 3, no row, no request.
- `billing-heavy server`: a server that bills 4,000 completion tokens for every reply, to an entry that
  sets no `max_tokens`, with many calls in flight: spend stays under the cap.

Printed: a table of scenario, rows expected, rows found, duplicates, the most replies a kill left paid
for but unwritten (read from the dead run's ledger journal; at most the calls in flight, `--chunk`),
spend against the cap (the ledger's total over every run into the output, calls a dead run had in flight
counted at their reserved worst case), the exit codes, and whether every check held. Targets: 0 rows lost
beyond the calls in flight, 0 duplicates, spend <= cap in every scenario, resumed rows identical to an
uninterrupted run. `--fast` runs every scenario smaller (fewer kills and problems): the test suite runs
it. The exit code is 0 when every check held.
"""

from __future__ import annotations

import argparse
import json
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from corl_gym.budget import within_budget
from corl_gym.experts.fake_server import ChatServer

BENCH_KEYS = ("pool", "dataset", "seed", "policy", "budget", "problem_id")
RECORD_KEYS = ("problem_id", "model")
CHUNK = 4  # record's calls in flight at once: at most this many paid replies can be lost to a kill
WAIT_S = 300  # the longest any child may run; every wait ends as soon as its event happens

SIM_POOL = """name: chaos-sim
dataset: synthetic
budgets: {low: 0.001, medium: 0.01, high: 0.05}
controller: {name: self, backend: sim, model: s, price_in: 0, price_out: 0, accuracy: {1: 0.7, 5: 0.3}}
experts:
  - {name: small, backend: sim, model: small, price_in: 0.1, price_out: 0.4, accuracy: {1: 0.8, 5: 0.5},
     completion_tokens: 400, simulate_latency: true, latency_base_s: 0.004, tokens_per_s: 1000000000}
  - {name: large, backend: sim, model: large, price_in: 2, price_out: 8, accuracy: {1: 0.95, 5: 0.8},
     completion_tokens: 600, simulate_latency: true, latency_base_s: 0.004, tokens_per_s: 1000000000}
"""
LIVE_POOL = """name: chaos-live
dataset: synthetic
budgets: {{low: 0.001, medium: 0.01, high: 1}}
controller: {{name: self, backend: sim, model: s, price_in: 0, price_out: 0, accuracy: {{1: 0.5}}}}
experts:
  - {{name: a, backend: openai, model: m-a, price_in: 1, price_out: 4, base_url: '{url}', api_key_env: null,
     timeout: 30, max_retries: 1, backoff_base_s: 0.01{extra}}}
  - {{name: b, backend: openai, model: m-b, price_in: 1, price_out: 4, base_url: '{url}', api_key_env: null,
     timeout: 30, max_retries: 1, backoff_base_s: 0.01{extra}}}
"""


@dataclass
class Outcome:
    """One row of the table."""

    scenario: str
    expected: int | None  # None: as many as the cap affords
    found: int
    duplicates: int
    spend_usd: float
    cap_usd: float | None
    exit_codes: list[int]
    checks: dict[str, bool] = field(default_factory=dict)
    unwritten_at_kill: str = "-"  # the most paid replies a kill left unwritten, against the calls in flight

    @property
    def ok(self) -> bool:
        spend_ok = self.cap_usd is None or within_budget(self.spend_usd, self.cap_usd)
        rows_ok = self.expected is None or self.found == self.expected
        return spend_ok and rows_ok and self.duplicates == 0 and all(self.checks.values())


# ----------------------------------------------------------------------------------------- children
def _cli(args: list[str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "corl_gym.cli", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _finish(child: subprocess.Popen) -> tuple[int, str]:
    _, err = child.communicate(timeout=WAIT_S)
    return child.returncode, err


def _run(args: list[str]) -> tuple[int, str]:
    return _finish(_cli(args))


def _lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines() if path.exists() else []


def _rows(path: Path, keys: tuple[str, ...]) -> tuple[list[str], int]:
    """(complete lines, duplicate keys) of a JSONL output as it is on disk (no reader's clean-up)."""
    lines = [line for line in _lines(path) if line.strip()]
    keys_seen = [tuple(json.loads(line)[k] for k in keys) for line in lines]
    return lines, len(keys_seen) - len(set(keys_seen))


def _spend(ledger: Path) -> float:
    return json.loads(ledger.read_text())["spend_usd"] if ledger.exists() else 0.0


def _kill_at_random_points(args: list[str], rows: Path, total: int, kills: int, rng: random.Random,
                           journal: Path | None = None) -> tuple[list[int], int]:
    """Start the run `kills` times and SIGKILL it after a random number of new rows (and a random few ms),
    then let one last run finish. Returns every exit code (-9 for a kill) and, with the run's ledger
    `journal`, the most replies any killed run had been paid for but not written (its calls in flight)."""
    codes, most_unwritten = [], 0
    for _ in range(kills):
        written_before = len(_lines(rows))
        child = _cli(args)
        target = min(written_before + rng.randint(1, max(1, total // (kills + 1))), total - 1)
        deadline = time.monotonic() + WAIT_S
        while child.poll() is None and len(_lines(rows)) < target and time.monotonic() < deadline:
            time.sleep(0.005)
        time.sleep(rng.uniform(0, 0.03))
        child.send_signal(signal.SIGKILL)
        codes.append(_finish(child)[0])
        if journal is not None and journal.exists():
            written = len([line for line in _lines(rows) if line.endswith("}")]) - written_before
            most_unwritten = max(most_unwritten, _answered(journal) - written)
    codes.append(_run(args)[0])
    return codes, most_unwritten


def _answered(journal: Path) -> int:
    """Calls a (dead) run's ledger journal booked as answered: each should have its row on disk."""
    entries = [json.loads(line) for line in journal.read_text().split("\n")[:-1]]
    return sum(1 for e in entries if "book" in e and e["reply"]["error_kind"] is None and not e["reply"]["cached"])


# ---------------------------------------------------------------------------------------- scenarios
def _bench_args(pool: Path, out: Path, size: int, *more: str) -> list[str]:
    return ["bench", "--pool", str(pool), "--policies", "always-self,random,cascade,always:small,oracle",
            "--budgets", "low,high", "--limit", str(size), "--quiet", "--out", str(out), *more]


def kill_bench(folder: Path, pool: Path, size: int, kills: int, rng: random.Random) -> Outcome:
    reference, chaos = folder / "bench-straight", folder / "bench-killed"
    straight_code, _ = _run(_bench_args(pool, reference, size))
    expected = sorted(_lines(reference / "results.jsonl"))
    codes, _ = _kill_at_random_points(
        _bench_args(pool, chaos, size), chaos / "results.jsonl", len(expected), kills, rng
    )
    lines, duplicates = _rows(chaos / "results.jsonl", BENCH_KEYS)
    return Outcome(f"kill -9 x{kills} (bench, sim)", len(expected), len(lines), duplicates,
                   _spend(chaos / "ledger.json"), None, [straight_code, *codes],
                   {"identical to uninterrupted": sorted(lines) == expected, "ends with exit 0": codes[-1] == 0})


def _record_args(pool: Path, out: Path, size: int, *more: str) -> list[str]:
    return ["record", "--pool", str(pool), "--dataset", "synthetic", "--limit", str(size), "--out", str(out),
            "--chunk", str(CHUNK), *more]


def kill_record(folder: Path, pool: Path, size: int, kills: int, rng: random.Random) -> Outcome:
    reference, chaos = folder / "straight.jsonl", folder / "killed.jsonl"
    straight_code, _ = _run(_record_args(pool, reference, size))
    expected = sorted(_lines(reference))
    codes, unwritten = _kill_at_random_points(_record_args(pool, chaos, size), chaos, len(expected), kills, rng,
                                              journal=folder / "killed.ledger.json.journal")
    lines, duplicates = _rows(chaos, RECORD_KEYS)
    return Outcome(f"kill -9 x{kills} (record, loopback)", len(expected), len(lines), duplicates,
                   _spend(folder / "killed.ledger.json"), None, [straight_code, *codes],
                   {"identical to uninterrupted": sorted(lines) == expected, "ends with exit 0": codes[-1] == 0,
                    "unwritten <= in flight": unwritten <= CHUNK}, f"{unwritten} <= {CHUNK}")


def kill_record_capped(folder: Path, pool: Path, size: int, kills: int, rng: random.Random) -> Outcome:
    """One call at a time (`--chunk 1`): a call reserves about $0.0012 (256 tokens x $4/1M, one prompt token a
    byte) and costs ~$0.00005. The cap leaves room for one call plus one per kill: a killed run's call in
    flight counts at its reserved worst case, so the runs after it stop early, or finish if no kill caught
    a call in flight; either way the ledger's total stays under the cap."""
    out, ledger, cap = folder / "capped.jsonl", folder / "capped.ledger.json", 0.0015 + 0.0012 * kills
    args = _record_args(pool, out, size, "--max-spend", str(cap))
    args[args.index("--chunk") + 1] = "1"
    codes, _ = _kill_at_random_points(args, out, 2 * size, kills, rng)
    codes.append(_run(args)[0])  # once more: the cap still counts every run before it
    lines, duplicates = _rows(out, RECORD_KEYS)
    finished = codes[-1] == 3 or (codes[-1] == 0 and len(lines) == 2 * size)
    return Outcome(f"kill -9 x{kills}, capped (record, loopback)", None, len(lines), duplicates, _spend(ledger), cap,
                   codes, {"done, or stopped by the cap": finished})


def two_writers(folder: Path, size: int, args_of: Callable[[Path], list[str]], rows_of: Callable[[Path], Path],
                ledger_of: Callable[[Path], Path], keys: tuple[str, ...], label: str) -> Outcome:
    """The first run is frozen (SIGSTOP) once it has written a row, so it surely holds the output while the
    second starts; then it is let go (SIGCONT) and finishes alone."""
    out = folder / f"two-{label}"
    first = _cli(args_of(out))
    deadline = time.monotonic() + WAIT_S
    while first.poll() is None and not _lines(rows_of(out)) and time.monotonic() < deadline:
        time.sleep(0.005)
    first.send_signal(signal.SIGSTOP)
    code_b, err_b = _run(args_of(out))
    first.send_signal(signal.SIGCONT)
    code_a, _ = _finish(first)
    lines, duplicates = _rows(rows_of(out), keys)
    return Outcome(f"two writers ({label})", size, len(lines), duplicates, _spend(ledger_of(out)), None,
                   [code_a, code_b],
                   {"the second refused at once": (code_a == 0 and code_b == 2
                                                   and "being written by another run" in err_b)})


def cut_line(folder: Path, pool: Path, size: int) -> Outcome:
    out = folder / "cut"
    codes = [_run(_bench_args(pool, out, size))[0]]
    path = out / "results.jsonl"
    expected = sorted(_lines(path))
    path.write_text("\n".join(expected[:-3]) + "\n" + expected[-3][: len(expected[-3]) // 2], encoding="utf-8")
    codes.append(_run(_bench_args(pool, out, size))[0])
    lines, duplicates = _rows(path, BENCH_KEYS)
    return Outcome("cut line", len(expected), len(lines), duplicates, _spend(out / "ledger.json"), None, codes,
                   {"identical to uninterrupted": sorted(lines) == expected})


def non_object_line(folder: Path, pool: Path, size: int) -> Outcome:
    out = folder / "non-object"
    codes = [_run(_bench_args(pool, out, size))[0]]
    path = out / "results.jsonl"
    kept = _lines(path)
    path.write_text("\n".join(kept[:2] + ["123"] + kept[2:]) + "\n", encoding="utf-8")
    code, err = _run(_bench_args(pool, out, size))
    lines = [line for line in _lines(path) if line != "123"]
    return Outcome("non-object line", len(kept), len(lines), 0, _spend(out / "ledger.json"), None, [*codes, code],
                   {"error names file and line": code == 2 and "results.jsonl, line 3" in err})


def rerun_with_cap(folder: Path, pool: Path, size: int, label: str, policies: str, cap: float) -> Outcome:
    out = folder / f"rerun-{label}"
    args = _bench_args(pool, out, size, "--max-spend", str(cap))
    args[args.index("--policies") + 1] = policies
    codes = [_run(args)[0] for _ in range(3)]
    lines, duplicates = _rows(out / "results.jsonl", BENCH_KEYS)
    return Outcome(f"rerun x3 with a cap ({label})", None, len(lines), duplicates, _spend(out / "ledger.json"), cap,
                   codes, {"every run stopped by the cap": codes == [3] * len(codes)})


def replay_only_miss(folder: Path, pool: Path, server: ChatServer, size: int) -> Outcome:
    out, before = folder / "replay-only", len(server.requests)
    args = _bench_args(pool, out, size, "--cache", str(folder / "empty.sqlite"), "--cache-mode", "replay-only")
    args[args.index("--policies") + 1] = "always:a"
    code, err = _run(args)
    lines, duplicates = _rows(out / "results.jsonl", BENCH_KEYS)
    return Outcome("replay-only miss", 0, len(lines), duplicates, _spend(out / "ledger.json"), None, [code],
                   {"an error, no request": code == 3 and "cache miss" in err and len(server.requests) == before})


def billing_heavy(folder: Path, pool: Path, size: int, verb: str) -> Outcome:
    """Each call bills $0.016 (4,000 tokens x $4/1M) and reserves $0.0164 (the 4,096 sent): 3 fit in $0.05."""
    cap = 0.05
    if verb == "record":
        out, ledger = folder / "billing.jsonl", folder / "billing.ledger.json"
        args = _record_args(pool, out, size, "--max-spend", str(cap), "--chunk", "256")
        rows, keys = out, RECORD_KEYS
    else:
        out = folder / "billing-bench"
        args = _bench_args(pool, out, size, "--max-spend", str(cap))
        args[args.index("--policies") + 1] = "always:a,always:b"
        rows, keys, ledger = out / "results.jsonl", BENCH_KEYS, out / "ledger.json"
    code, _ = _run(args)
    lines, duplicates = _rows(rows, keys)
    return Outcome(f"billing-heavy server ({verb})", None, len(lines), duplicates, _spend(ledger), cap, [code],
                   {"stopped by the cap": code == 3})


# -------------------------------------------------------------------------------------------- main
@dataclass
class Setup:
    """What every scenario runs against: a folder, the pool files and the sizes."""

    root: Path
    sim: Path
    live: Path
    heavy: Path
    server: ChatServer
    fast: bool
    rng: random.Random

    @property
    def kills(self) -> int:
        return 1 if self.fast else 5

    @property
    def bench_size(self) -> int:
        return 4 if self.fast else 20

    @property
    def record_size(self) -> int:
        return 6 if self.fast else 30


SCENARIOS: dict[str, Callable[[Setup], Outcome]] = {
    "kill-bench": lambda s: kill_bench(s.root, s.sim, s.bench_size, s.kills, s.rng),
    "kill-record": lambda s: kill_record(s.root, s.live, s.record_size, s.kills, s.rng),
    "kill-record-capped": lambda s: kill_record_capped(s.root, s.live, s.record_size, s.kills, s.rng),
    "two-writers-bench": lambda s: two_writers(
        s.root, 5 * 2 * s.bench_size, lambda out: _bench_args(s.sim, out, s.bench_size),
        lambda out: out / "results.jsonl", lambda out: out / "ledger.json", BENCH_KEYS, "bench"),
    "two-writers-record": lambda s: two_writers(
        s.root, 2 * s.record_size, lambda out: _record_args(s.live, out.with_suffix(".jsonl"), s.record_size),
        lambda out: out.with_suffix(".jsonl"), lambda out: out.with_suffix(".ledger.json"), RECORD_KEYS, "record"),
    "cut-line": lambda s: cut_line(s.root, s.sim, s.bench_size),
    "non-object-line": lambda s: non_object_line(s.root, s.sim, s.bench_size),
    "rerun-cap-sim": lambda s: rerun_with_cap(s.root, s.sim, s.bench_size, "sim", "always:large", cap=0.05),
    "rerun-cap-loopback": lambda s: rerun_with_cap(s.root, s.live, s.bench_size, "loopback", "always:a,always:b",
                                                   cap=0.0015),
    "replay-only-miss": lambda s: replay_only_miss(s.root, s.live, s.server, s.bench_size),
    "billing-heavy-record": lambda s: billing_heavy(s.root, s.heavy, 3 * s.record_size, "record"),
    "billing-heavy-bench": lambda s: billing_heavy(s.root, s.heavy, s.bench_size, "bench"),
}


def run_all(fast: bool = False, seed: int = 0, only: list[str] | None = None) -> list[Outcome]:
    """Run the scenarios named in `only` (default: all of `SCENARIOS`, in order) in a temporary folder."""
    with (
        tempfile.TemporaryDirectory() as tmp,
        ChatServer(latency_s=0.03, max_requests=100_000, lifetime_s=3600) as server,
        ChatServer(bill_completion_tokens=4000, max_requests=10_000, lifetime_s=3600) as billing,
    ):
        root = Path(tmp)
        sim, live, heavy = root / "sim.yaml", root / "live.yaml", root / "heavy.yaml"
        sim.write_text(SIM_POOL)
        live.write_text(LIVE_POOL.format(url=server.base_url, extra=", max_tokens: 256"))
        heavy.write_text(LIVE_POOL.format(url=billing.base_url, extra=""))
        setup = Setup(root, sim, live, heavy, server, fast, random.Random(seed))
        return [SCENARIOS[name](setup) for name in (only or SCENARIOS)]


def table(outcomes: list[Outcome]) -> str:
    head = ["scenario", "rows expected", "rows found", "duplicates", "unwritten at a kill", "spend vs cap",
            "exit codes", "ok"]
    body = []
    for o in outcomes:
        spend = f"${o.spend_usd:.6f} <= ${o.cap_usd:.6f}" if o.cap_usd is not None else f"${o.spend_usd:.6f}, no cap"
        failed = [name for name, held in o.checks.items() if not held]
        body.append([o.scenario, "(cap)" if o.expected is None else str(o.expected), str(o.found), str(o.duplicates),
                     o.unwritten_at_kill, spend,
                     " ".join(map(str, o.exit_codes)), "yes" if o.ok else "NO " + "; ".join(failed)])
    widths = [max(len(row[i]) for row in [head, *body]) for i in range(len(head))]
    lines = [" | ".join(cell.ljust(w) for cell, w in zip(row, widths)) for row in [head, *body]]
    return "\n".join([lines[0], "-+-".join("-" * w for w in widths), *lines[1:]])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fast", action="store_true", help="fewer kills and problems (what the test suite runs)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the kill points")
    parser.add_argument("--only", default=None, help=f"comma list of scenarios (default: all): {', '.join(SCENARIOS)}")
    args = parser.parse_args(argv)
    only = [name.strip() for name in args.only.split(",")] if args.only else None
    unknown = [name for name in only or [] if name not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario(s) {', '.join(unknown)}; valid: {', '.join(SCENARIOS)}")
    start = time.perf_counter()
    outcomes = run_all(fast=args.fast, seed=args.seed, only=only)
    print(table(outcomes))
    print(f"\n{sum(o.ok for o in outcomes)} of {len(outcomes)} scenarios held every check, "
          f"in {time.perf_counter() - start:.0f} s")
    return 0 if all(o.ok for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())

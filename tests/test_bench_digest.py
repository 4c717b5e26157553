"""Bench regression digests: small seeded `corl-gym bench` runs, their result rows hashed and compared
with digests recorded before the package was re-layered. A refactor must leave every row (policy, budget,
problem, verdict, reward, dollars, calls) as it was; a deliberate change of behaviour re-records them
(`python -m tests.test_bench_digest`) and says why in its commit."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest

from corl_gym.benchmarks.bench import BenchConfig, run_bench

RUNS = {
    "synthetic, sim-paper": dict(pools=["sim-paper"], datasets=["synthetic"], limit=20, train_limit=100),
    "llmrouter-math replay": dict(pools=["llmrouter-math"], limit=20, train_limit=100),
    "zeroeval-math-l5 replay": dict(pools=["zeroeval-math-l5"], limit=20, train_limit=100),
}
RECORDED = {
    "synthetic, sim-paper": "be14ba7f42d507fffffcb13d9445524137c8ba5a0688e5ef6718176414c957c6",
    "llmrouter-math replay": "50c8eced5a719dd22e8aaccb8e413077371040c4a15799d036f72677515ad8fa",
    "zeroeval-math-l5 replay": "3e96fb7ee4a23173ad8ae18202456f3a8820eadf7d1154a1d082378592132d73",
}


def bench_digest(run: str) -> str:
    result = run_bench(BenchConfig(**RUNS[run], seeds=[0], progress=False))
    rows = sorted(json.dumps(_rounded(row), sort_keys=True) for row in result.rows)
    return hashlib.sha256("\n".join(rows).encode()).hexdigest()


def _rounded(value: Any) -> Any:
    """Floats to 12 significant digits: a digest of behaviour, not of the last bit of a sum's order."""
    if isinstance(value, float):
        return float(f"{value:.12g}")
    if isinstance(value, dict):
        return {key: _rounded(item) for key, item in value.items()}
    return value


@pytest.mark.parametrize("run", sorted(RUNS))
def test_bench_rows_match_the_recorded_digest(run, request):
    if "replay" in run:
        request.getfixturevalue("data_dir")
    assert bench_digest(run) == RECORDED[run]


if __name__ == "__main__":
    for name in sorted(RUNS):
        print(f"    {name!r}: {bench_digest(name)!r},")

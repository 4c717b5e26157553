"""Smoke test of benchmarks/verify_bench.py's building blocks (the full run is a manual benchmark)."""

from __future__ import annotations

from pathlib import Path

from corl_gym.benchmarks import verify_bench


def test_bench_pairs_are_unique_and_mixed(data_dir: Path) -> None:
    pairs = verify_bench.bench_pairs(data_dir, limit=None)
    assert len(pairs) == len(set(pairs)) >= 1000
    assert all(pred.startswith("\\boxed{") and gold.startswith("$") for pred, gold in pairs)


def test_perturbation_changes_and_reformat_keeps_the_value() -> None:
    assert verify_bench._perturb("\\frac{3}{56}") == "\\frac{3}{57}"
    assert verify_bench._reformat("\\frac{3}{56}") == "3/56"
    assert verify_bench._reformat("12345") == "12,345"


def test_stats_columns() -> None:
    stats = verify_bench._stats([0.001 * k for k in range(1, 101)])
    assert list(stats) == ["median", "p90", "p99", "max"]
    assert stats["median"] < stats["p90"] <= stats["p99"] <= stats["max"] == 100.0

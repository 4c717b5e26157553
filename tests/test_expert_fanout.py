"""The fault run of issue 6 at CI size (the closing evidence runs it with 500 episodes:
`python -m corl_gym.benchmarks.expert_fanout --fault-episodes 500`), and a smoke run of the fan-out
benchmark. Behaviour only: no wall-clock thresholds."""

from __future__ import annotations

from corl_gym.benchmarks.expert_fanout import fanout, fault_run


def test_fault_run_records_every_episode_and_shows_every_failure():
    summary = fault_run(episodes=100, fault_rate=0.2, num_envs=50, quiet=True, seed=1)
    assert summary["episodes_recorded"] >= 100
    assert sum(summary["faults_injected"].values()) > 0.1 * summary["requests"]  # faults really were injected
    assert summary["retries"] > 0 and summary["max_attempts"] <= summary["attempt_bound"]
    assert summary["requests"] <= summary["calls"] * summary["attempt_bound"]
    assert summary["failures_in_info"] == sum(summary["failures_by_kind"].values())
    assert summary["ok"]


def test_fault_run_with_no_retries_shows_failures_in_info():
    summary = fault_run(episodes=40, fault_rate=0.5, num_envs=20, max_retries=0, quiet=True, seed=2)
    assert summary["max_attempts"] == 1 and summary["requests"] == summary["calls"]
    assert summary["failures_in_info"] == sum(summary["failures_by_kind"].values()) > 0 and summary["ok"]


def test_fanout_benchmark_prints_its_figures(capsys):
    fanout(n=24, latency=0.02, concurrency=8, layer_calls=300)
    out = capsys.readouterr().out
    for label in ("ideal ceil(N/C)", "ThreadPoolExecutor(10)", "speed-up vs thread pool", "per-call overhead", "our layer alone"):
        assert label in out

"""`benchmarks/chaos.py` in its fast mode, one scenario a test: kill -9 at random points, two writers, a cut
and a non-object line, reruns with a cap, a replay-only miss, a billing-heavy server. Each runs the real
command line in child processes and must hold every check: no duplicate, no row lost or changed, spend
under the cap."""

from __future__ import annotations

import pytest

from corl_gym.benchmarks.chaos import SCENARIOS, run_all, table


@pytest.mark.slow
@pytest.mark.parametrize("name", list(SCENARIOS))
def test_chaos_scenario_holds(name):
    [outcome] = run_all(fast=True, seed=1, only=[name])
    assert outcome.ok, table([outcome])
    assert outcome.duplicates == 0 and (outcome.cap_usd is None or outcome.spend_usd <= outcome.cap_usd)
    if name.startswith("kill") or name.startswith("two-writers"):
        assert outcome.found > 0

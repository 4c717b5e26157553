"""`benchmarks/chaos.py` in its fast mode: every scenario (kill -9 at random points, two writers, a cut and a
non-object line, reruns with a cap, a replay-only miss, a billing-heavy server) holds every check."""

from __future__ import annotations

from corl_gym.benchmarks.chaos import run_all, table


def test_every_chaos_scenario_holds():
    outcomes = run_all(fast=True, seed=1)
    failed = [o.scenario for o in outcomes if not o.ok]
    assert not failed, table(outcomes)
    assert all(o.duplicates == 0 for o in outcomes)
    assert all(o.spend_usd <= o.cap_usd for o in outcomes if o.cap_usd is not None)
    kills = [o for o in outcomes if o.scenario.startswith("kill -9")]
    assert len(kills) == 3 and all(o.found for o in kills)
    assert "rows expected" in table(outcomes) and "spend vs cap" in table(outcomes)


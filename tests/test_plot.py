"""Plots stay readable with many policies: a colour and a marker per policy, coinciding points visible,
axis labels on every panel of every result plot."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("matplotlib")

from corl_gym.benchmarks.plot import layout, pareto_figure, pareto_plot  # noqa: E402


def summary_of(policies: int, same: int = 0) -> list[dict]:
    """`policies` policies x 3 budgets; the first `same` of them sit on exactly the same three points."""
    rows = []
    for i in range(policies):
        k = 0 if i < same else i
        for j, budget in enumerate(("low", "medium", "high")):
            rows.append({"pool": "sim-paper", "dataset": "synthetic", "policy": f"p{i}", "budget": budget,
                         "mean_cost_usd": 0.0005 * k * (j + 1), "accuracy": 0.5 + 0.02 * k + 0.05 * j})
    return rows


@pytest.mark.parametrize("policies", [12, 20, 30])
def test_every_policy_has_its_own_colour_and_marker(policies):
    marks = layout(summary_of(policies))
    styles = {m.policy: (tuple(m.color) if not isinstance(m.color, str) else m.color, m.marker) for m in marks}
    assert len(styles) == policies
    assert len({color for color, _ in styles.values()}) == policies  # colours never repeat
    assert len(set(styles.values())) == policies
    if policies <= 20:
        assert len({marker for _, marker in styles.values()}) == policies


def test_coinciding_points_are_spread_and_the_others_stay_put():
    marks = layout(summary_of(12, same=5))
    for budget in ("low", "medium", "high"):
        stacked = [m for m in marks if m.budget == budget and m.policy in {f"p{i}" for i in range(5)}]
        assert len({(m.x, m.y) for m in stacked}) == 1  # the data are equal...
        assert len({(round(m.dx, 6), round(m.dy, 6)) for m in stacked}) == 5  # ...and drawn apart
    assert all(m.dx == m.dy == 0 for m in marks if m.policy not in {f"p{i}" for i in range(5)})


def test_pareto_figure_labels_every_axis_and_lists_every_policy(tmp_path):
    summary = summary_of(20, same=5) + [{**row, "dataset": "math500"} for row in summary_of(3)]
    fig = pareto_figure(summary)
    assert len(fig.axes) == 2
    for ax in fig.axes:
        assert ax.get_xlabel() and ax.get_ylabel() == "accuracy"
    labels = fig.axes[0].get_legend().get_texts()
    assert {f"p{i}" for i in range(20)} <= {t.get_text() for t in labels}
    assert pareto_plot(summary, tmp_path / "pareto.png").stat().st_size > 10_000


def test_training_curves_label_every_y_axis(tmp_path):
    from corl_gym.agents.ppo.preset import plot_curves

    rows = [{"step": s, "env/reward/low": 0.1 * s, "env/mean_cost_usd/low": 0.001 * s, "critic/vf_loss": 1.0 / s,
             "actor/kl": 0.01} for s in range(1, 4)]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "sft").mkdir()
    (tmp_path / "sft" / "sft_metrics.jsonl").write_text('{"step": 1, "sft/loss": 2.0}\n')
    (tmp_path / "sft" / "copy_metrics.jsonl").write_text(
        '{"step": 1, "copy/loss": 7.0}\n{"step": 1, "copy/accuracy": 0.1}\n'
    )
    import matplotlib.pyplot as plt

    saved = []
    real_subplots = plt.subplots
    plt.subplots = lambda *a, **k: saved.append(real_subplots(*a, **k)) or saved[-1]
    try:
        assert plot_curves(Path(tmp_path)).is_file()
    finally:
        plt.subplots = real_subplots
    (fig, axes), = saved
    assert all(ax.get_xlabel() and ax.get_ylabel() for ax in axes)

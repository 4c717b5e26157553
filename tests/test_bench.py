import json

import gymnasium as gym
import pytest

import corl_gym  # noqa: F401
from corl_gym.agents.episodes import run_episode
from corl_gym.agents.routers import make_router, router_names
from corl_gym.benchmarks.bench import BenchConfig, run_bench
from corl_gym.cli import main
from corl_gym.data import load_problems
from corl_gym.splits import split_problems

ROW_KEYS = {"policy", "budget", "dataset", "pool", "problem_id", "correct", "reward", "cost_usd", "calls", "turns"}


@pytest.fixture(scope="module")
def default_bench(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    result = run_bench(BenchConfig(out=str(out), progress=False))
    return out, result.rows, result.markdown


def by_policy_and_budget(rows, metric):
    table = {}
    for row in rows:
        table.setdefault((row["policy"], row["budget"]), []).append(row[metric])
    return {key: sum(values) / len(values) for key, values in table.items()}


def test_default_bench_writes_rows_and_summary(default_bench):
    out, rows, summary = default_bench
    lines = (out / "results.jsonl").read_text().splitlines()
    assert len(lines) == len(rows) == 14 * 3 * 200
    assert ROW_KEYS <= set(json.loads(lines[0]))
    text = (out / "summary.md").read_text()
    assert text.strip() == summary.strip()
    assert "| oracle | high | 200 |" in text and "expert-call ratio" in text and "over-budget" in text
    assert "APGR" in text and (out / "pareto.png").stat().st_size > 10_000


def test_oracle_is_most_accurate_and_o3_most_expensive_at_every_budget(default_bench):
    _, rows, _ = default_bench
    accuracy, cost = by_policy_and_budget(rows, "correct"), by_policy_and_budget(rows, "cost_usd")
    reward = by_policy_and_budget(rows, "reward")
    for budget in ("low", "medium", "high"):
        others = [p for p, b in accuracy if b == budget and p != "oracle"]
        assert all(accuracy[("oracle", budget)] > accuracy[(p, budget)] for p in others)
        assert all(reward[("oracle", budget)] >= reward[(p, budget)] for p in others)
        # highest mean cost of the single-call policies; best-affordable ties it at high, where it also picks o3
        single_call = [p for p in others + ["oracle"] if p not in ("vote", "cascade-agree", "knn")]
        assert all(cost[("always:o3", budget)] >= cost[(p, budget)] for p in single_call)
    assert cost[("vote", "high")] > cost[("always:o3", "high")]  # it buys every affordable answer


def test_budget_aware_baseline_spends_more_as_budget_grows(default_bench):
    _, rows, _ = default_bench
    cost = by_policy_and_budget(rows, "cost_usd")
    assert cost[("best-affordable", "low")] < cost[("best-affordable", "medium")] < cost[("best-affordable", "high")]
    assert all(r["cost_usd"] == 0.0 for r in rows if r["policy"] == "always-self")


def test_random_router_is_seeded():
    env = gym.make("CORL-Math-v0", budget="medium")
    router_a, router_b = make_router("random", seed=5), make_router("random", seed=5)
    runs_a = [run_episode(env, router_a, i, {"problem_index": i})["calls"] for i in range(20)]
    runs_b = [run_episode(env, router_b, i, {"problem_index": i})["calls"] for i in range(20)]
    assert runs_a == runs_b and len({json.dumps(c) for c in runs_a}) > 1


def test_router_names_and_errors():
    assert router_names(["a", "b"]) == [
        "always-self", "always:a", "always:b", "random", "cheapest-affordable", "best-affordable", "cascade",
        "cascade-agree", "vote", "best-fixed", "threshold", "knn", "oracle",
    ]
    with pytest.raises(ValueError, match="always-self, random, cheapest-affordable"):
        make_router("smart")
    env = gym.make("CORL-Math-v0")
    _, info = env.reset(seed=0)
    with pytest.raises(ValueError, match="gpt-4.1-nano, gpt-4.1, o3"):
        make_router("always:gpt-5").reset(env, info)


def test_cli_bench_list_and_errors(tmp_path, capsys):
    assert main(["bench", "--policies", "always-self,oracle", "--budgets", "low", "--limit", "5", "--quiet",
                 "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert "| always-self | low | 5 |" in printed and (tmp_path / "summary.md").exists()
    assert main(["list"]) == 0
    listed = capsys.readouterr().out
    assert "CORL-Math-v0" in listed and "sim-paper" in listed and "math500" in listed and "oracle" in listed
    assert main(["bench", "--dataset", "nope", "--quiet"]) == 2
    assert "synthetic" in capsys.readouterr().err
    assert main(["bench", "--budgets", "tiny", "--quiet"]) == 2
    assert "low, medium, high" in capsys.readouterr().err


def test_rerun_resumes_from_results_jsonl(tmp_path):
    config = BenchConfig(policies=["always-self", "cascade"], budgets=["low", "high"], limit=10, out=str(tmp_path),
                         progress=False, references=False)
    first = run_bench(config)
    path = tmp_path / "results.jsonl"
    lines = path.read_text().splitlines()
    assert len(lines) == len(first.rows) == 2 * 2 * 10
    path.write_text("\n".join(lines[:-5]) + "\n" + lines[-5][:20])  # an interrupted run: a cut line at the end
    second = run_bench(config)
    assert len(second.rows) == 40
    assert sorted(json.dumps(r, sort_keys=True) for r in second.rows) == sorted(
        json.dumps(r, sort_keys=True) for r in first.rows
    )
    third = run_bench(config)
    assert len(path.read_text().splitlines()) == 40  # nothing appended: 35 + 5 redone (the cut line was cut off)
    assert third.markdown == second.markdown


@pytest.mark.parametrize("cut", [1, 23, 58])
def test_a_resumed_run_has_the_rows_of_an_uninterrupted_one_byte_for_byte(tmp_path, cut):
    config = dict(policies=["random", "cascade", "always:gpt-4.1-nano", "oracle"], budgets=["low", "high"], limit=15,
                  progress=False)
    straight = run_bench(BenchConfig(**config, out=str(tmp_path / "straight")))
    lines = (tmp_path / "straight" / "results.jsonl").read_text().splitlines()
    resumed = tmp_path / "resumed"
    resumed.mkdir()  # a run killed after `cut` rows, in the middle of writing the next
    (resumed / "results.jsonl").write_text("\n".join(lines[:cut]) + "\n" + lines[cut][:25])
    again = run_bench(BenchConfig(**config, out=str(resumed)))
    assert sorted((resumed / "results.jsonl").read_text().splitlines()) == sorted(lines)
    assert again.markdown == straight.markdown


def test_random_draws_per_episode_whatever_ran_before():
    env = gym.make("CORL-Math-v0", budget="medium")
    forwards, backwards = make_router("random", seed=5), make_router("random", seed=5)
    ahead = {i: run_episode(env, forwards, i, {"problem_index": i})["calls"] for i in range(12)}
    behind = {i: run_episode(env, backwards, i, {"problem_index": i})["calls"] for i in reversed(range(12))}
    assert ahead == behind
    other = make_router("random", seed=6)
    assert {i: run_episode(env, other, i, {"problem_index": i})["calls"] for i in range(12)} != ahead


def test_several_pools_datasets_and_seeds(data_dir, tmp_path):
    config = BenchConfig(
        policies=["always-self", "always:gpt-4.1-nano", "best-fixed", "oracle"], pools=["sim-paper"],
        datasets=["synthetic", "math500"], seeds=[0, 1], limit=15, train_limit=100, out=str(tmp_path), progress=False,
    )
    result = run_bench(config)
    assert {(r["dataset"], r["seed"]) for r in result.rows} == {
        (d, s) for d in ("synthetic", "math500") for s in (0, 1)
    }
    assert {e["n"] for e in result.summary} == {30}  # 15 test problems x 2 seeds
    assert "### math500 | pool sim-paper" in result.markdown and "### synthetic | pool sim-paper" in result.markdown
    train_ids = {p.id for p in split_problems(load_problems("math500"), 0.5)[0]}
    assert not train_ids & {r["problem_id"] for r in result.rows}  # evaluated on the test split only


def test_train_forwards_every_flag_to_its_learner(monkeypatch):
    import corl_gym.cli as cli

    seen = {}
    monkeypatch.setattr(cli, "_forward",
                        lambda target, argv, prog: seen.update(target=target, argv=argv, prog=prog) or 0)
    assert main(["train", "--out", "X", "--learner", "ppo", "--seed", "3", "--preset", "tiny-cpu"]) == 0
    assert seen == {"target": "corl_gym.agents.ppo.train:main",
                    "argv": ["--out", "X", "--seed", "3", "--preset", "tiny-cpu"],
                    "prog": "corl-gym train --learner ppo"}
    assert main(["train", "--learner=sft", "--pool", "paper"]) == 0 and seen["argv"] == ["--pool", "paper"]


def test_missing_curve_references_run_as_marked_extra_policies():
    result = run_bench(BenchConfig(policies=["cascade"], budgets=["low", "high"], limit=10, progress=False))
    assert {r["policy"] for r in result.rows} == {
        "cascade", "always-self", "always:gpt-4.1-nano", "always:gpt-4.1", "always:o3"
    }
    assert {c["policy"] for c in result.curves} >= {"cascade"}
    assert "| cascade | " in result.markdown and "| always-self (reference) | low |" in result.markdown
    assert "APGR" in result.markdown
    # one expert given: it is the strong end, only always-self is added
    result = run_bench(BenchConfig(policies=["cascade", "always:gpt-4.1"], budgets=["low"], limit=5, progress=False))
    assert {r["policy"] for r in result.rows} == {"cascade", "always:gpt-4.1", "always-self"}


def live_pool(tmp_path):
    """sim-paper with its experts behind an OpenAI-compatible endpoint (never reached by always-self)."""
    import yaml

    from corl_gym.experts.pool import pool_path

    raw = yaml.safe_load(pool_path("sim-paper").read_text())
    raw["experts"] = [{"name": e["name"], "backend": "openai", "model": e["model"], "description": e["description"],
                       "price_in": e["price_in"], "price_out": e["price_out"], "base_url": "http://127.0.0.1:9/v1",
                       "api_key_env": None} for e in raw["experts"]]
    path = tmp_path / "live.yaml"
    path.write_text(yaml.safe_dump(raw))
    return str(path)


def test_live_pool_says_why_curve_metrics_are_missing(tmp_path):
    result = run_bench(BenchConfig(policies=["always-self"], pools=[live_pool(tmp_path)], budgets=["low"], limit=5,
                                   progress=False))
    assert {r["policy"] for r in result.rows} == {"always-self"} and result.curves == []
    assert "curve metrics not computed: they need always:gpt-4.1-nano, always:gpt-4.1, always:o3" in result.markdown
    assert "live (running them would cost money)" in result.markdown
    assert "simulated $/query" not in result.markdown and "Dollars are simulated" not in result.markdown


def test_simulated_dollars_are_labelled(default_bench):
    _, _, summary = default_bench
    assert "simulated $/query (95% CI)" in summary and "no money was spent" in summary


def test_mixed_and_dollar_budgets(tmp_path):
    result = run_bench(BenchConfig(policies=["cheapest-affordable"], budgets=["mixed", 0.02], limit=20, progress=False,
                                   references=False))
    by_budget = {}
    for row in result.rows:
        by_budget.setdefault(row["budget"], set()).add(row["threshold_usd"])
    assert by_budget["$0.02"] == {0.02}
    assert by_budget["mixed"] <= {0.001, 0.01, 0.05} and len(by_budget["mixed"]) > 1  # a mode drawn per episode
    assert main(["bench", "--policies", "always-self", "--budgets", "mixed,$0.005", "--limit", "3", "--quiet"]) == 0


def test_pairs_a_pool_cannot_cover_are_skipped_before_any_episode(data_dir, capsys):
    result = run_bench(BenchConfig(policies=["always-self"], pools=["sim-paper", "llmrouter-math"],
                                   datasets=["math500"], budgets=["low"], limit=5, progress=False, references=False))
    assert {(r["pool"], r["dataset"]) for r in result.rows} == {("sim-paper", "math500")}
    (note,) = result.notes
    assert (
        note.startswith("skipping pool llmrouter-math x dataset math500: ")
        and "no recorded answer for 500 of 500" in note
    )
    with pytest.raises(ValueError, match="nothing to run: skipping pool llmrouter-math x dataset math500"):
        run_bench(BenchConfig(pools=["llmrouter-math"], datasets=["math500"], limit=5, progress=False))
    assert main(["bench", "--pool", "sim-paper,llmrouter-math", "--dataset", "math500", "--policies", "always-self",
                 "--limit", "3", "--quiet"]) == 0
    assert "corl-gym bench: skipping pool llmrouter-math x dataset math500" in capsys.readouterr().err


def test_too_small_splits_name_the_dataset_and_sizes(tmp_path, capsys):
    rows = [{"id": f"p-{i}", "problem": f"What is {i}+1?", "answer": str(i + 1)} for i in range(40)]
    train, test = split_problems(load_problems_rows(rows, tmp_path / "all.jsonl"), 0.5)
    only_train = tmp_path / "only_train.jsonl"
    only_train.write_text(
        "".join(json.dumps({"id": p.id, "problem": p.problem, "answer": p.answer}) + "\n" for p in train[:2])
    )
    with pytest.raises(ValueError,
                       match=r"dataset '.*only_train.jsonl' has no test problems \(2 problems: 2 train, 0 test"):
        run_bench(BenchConfig(datasets=[str(only_train)], progress=False))
    only_test = tmp_path / "only_test.jsonl"
    only_test.write_text(
        "".join(json.dumps({"id": p.id, "problem": p.problem, "answer": p.answer}) + "\n" for p in test[:2])
    )
    with pytest.raises(ValueError, match=r"has no train problems \(2 problems: 0 train, 2 test"):
        run_bench(BenchConfig(datasets=[str(only_test)], progress=False))
    assert len(run_bench(BenchConfig(datasets=[str(only_test)], policies=["always-self"], budgets=["low"],
                                     progress=False, references=False)).rows) == 2  # nothing to fit: test part suffices
    assert main(["bench", "--dataset", str(only_train), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "has no test problems (2 problems: 2 train, 0 test" in err


def load_problems_rows(rows, path):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return load_problems(str(path))


def test_negative_limits_are_refused_not_sliced():
    for field in ("limit", "train_limit"):
        with pytest.raises(ValueError, match=f"{field} must be None or an integer >= 0, got -3"):
            run_bench(BenchConfig(**{field: -3}, progress=False))

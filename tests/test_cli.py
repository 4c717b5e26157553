"""The command line as a new user meets it: one vocabulary in every verb, and every mistake one line.

`MISTAKES` is the table of mistaken invocations: each must print exactly one line on stderr, naming the
verb and what to do, and exit 2, with no traceback. `MISSING_EXTRAS` runs verbs in a subprocess where an
optional dependency cannot be imported (a meta-path blocker stands in for an environment without it).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from corl_gym import __version__
from corl_gym.cli import main

MISTAKES = [
    (["bench", "--limit", "-3"], "argument --limit: expected an integer >= 0, got '-3'"),
    (["bench", "--limit", "ten"], "argument --limit: expected an integer >= 0, got 'ten'"),
    (["bench", "--seeds", "abc"], "argument --seeds/--seed: expected an integer >= 0, got 'abc'"),
    (["bench", "--seeds", "0,-1"], "expected an integer >= 0, got '-1'"),
    (["bench", "--budgets", "tiny"], "unknown budget 'tiny': use one of low, medium, high, mixed, or a dollar amount"),
    (["bench", "--budgets", "-0.5"], "expected a budget mode (low, medium, high, mixed) or a dollar amount >= 0"),
    (["bench", "--test-fraction", "0"], "argument --test-fraction: expected a number in (0, 1], got '0'"),
    (["bench", "--max-spend", "-1"], "argument --max-spend: expected a finite number >= 0, got '-1'"),
    (["bench", "--at-cost", "inf"], "argument --at-cost: expected a finite number >= 0, got 'inf'"),
    (["bench", "--pool", "nope"], "unknown pool 'nope'; valid names: sim-paper, paper"),
    (["bench", "--pool", "missing.yaml"], "pool file missing.yaml does not exist"),
    (["bench", "--dataset", "nope"], "Unknown dataset 'nope'. Valid names: synthetic, math500"),
    (["bench", "--dataset", "math500"], "dataset 'math500' not found: CORL_DATA_DIR is not set"),
    (["bench", "--dataset", "missing.jsonl"], "No such JSONL file: 'missing.jsonl'"),
    (["bench", "--policies", "smart"], "unknown policy 'smart': use one of always-self"),
    (["bench", "--policies", "sb3:missing.zip"], "no SB3 model at missing.zip"),
    (["bench", "--cache-mode", "sometimes"], "argument --cache-mode: invalid choice: 'sometimes'"),
    (["frobnicate"], "argument verb: invalid choice: 'frobnicate'"),
    ([], "the following arguments are required: verb"),
    (["train"], "the following arguments are required: --learner"),
    (["train", "--learner", "nope"], "argument --learner: invalid choice: 'nope'"),
    (["train", "--learner", "sb3-maskable-ppo", "--timesteps", "-5"],
     "argument --timesteps: expected an integer >= 1, got '-5'"),
    (["train", "--learner", "sb3-ppo", "--budget", "cheap"], "unknown budget 'cheap'"),
    (["train", "--learner", "ppo", "--iterations", "-1"], "argument --iterations: expected an integer >= 0, got '-1'"),
    (["train", "--learner", "sft", "--lr", "abc"], "argument --lr: expected a finite number >= 0, got 'abc'"),
    (["train", "--learner", "ppo", "--preset", "nope"], "unknown preset 'nope'; presets: tiny-cpu"),
    (["eval"], "the following arguments are required: --checkpoint"),
    (["eval", "--checkpoint", "nowhere"], "no model under nowhere"),
    (["eval", "--checkpoint", "nowhere", "--limit", "-3"], "argument --limit: expected an integer >= 0, got '-3'"),
    (["record", "--pool", "sim-paper", "--dataset", "synthetic", "--out", "r.jsonl", "--experts", "gpt-5"],
     "pool 'sim-paper' has no expert gpt-5; experts: gpt-4.1-nano, gpt-4.1, o3"),
]


def run_cli(argv: list[str], capsys) -> tuple[int, str, str]:
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's exits (usage errors, --help, --version)
        code = exc.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize("argv, expected", MISTAKES, ids=[" ".join(a) or "(nothing)" for a, _ in MISTAKES])
def test_a_mistake_is_one_line_and_exit_2(argv, expected, capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CORL_DATA_DIR", raising=False)
    monkeypatch.delenv("CORL_ALLOW_DOWNLOAD", raising=False)
    code, out, err = run_cli(argv, capsys)
    prog = "corl-gym" + (f" {argv[0]}" if argv and argv[0] in ("bench", "train", "eval", "record") else "")
    assert code == 2, (code, err)
    assert err.count("\n") == 1 and err.startswith(f"{prog}") and ": error: " in err, err
    assert expected in err and "Traceback" not in err


def test_the_table_has_thirty_mistakes():
    assert len(MISTAKES) == 30 and len({tuple(a) for a, _ in MISTAKES}) == 30


BLOCKED_RUN = """
import sys
blocked = set(sys.argv[1].split(","))

class Blocker:  # an environment where these optional dependencies are not installed
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in blocked:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, Blocker())
from corl_gym.cli import main
sys.exit(main(sys.argv[2:]))
"""


def missing_extras(tmp: Path) -> list[tuple[str, list[str], str]]:
    (tmp / "router").mkdir()
    (tmp / "router" / "sb3-ppo.zip").write_bytes(b"PK")
    (tmp / "ckpt").mkdir()
    (tmp / "ckpt" / "config.json").write_text("{}")
    return [
        ("stable_baselines3", ["train", "--learner", "sb3-maskable-ppo"], "pip install 'corl-gym[sb3]'"),
        ("sb3_contrib", ["train", "--learner", "sb3-maskable-ppo"],
         "MaskablePPO needs sb3_contrib: pip install 'corl-gym[sb3]'"),
        ("stable_baselines3", ["bench", "--policies", "sb3:router/sb3-ppo.zip", "--quiet"],
         "pip install 'corl-gym[sb3]'"),
        ("transformers", ["eval", "--checkpoint", "ckpt"],
         "transformers is not installed: pip install 'corl-gym[train]'"),
        ("torch", ["train", "--learner", "ppo", "--help"], "torch is not installed: pip install 'corl-gym[train]'"),
        ("torch", ["train", "--learner", "sft"], "torch is not installed: pip install 'corl-gym[train]'"),
        ("trl", ["train", "--learner", "trl-grpo", "--model", "ckpt"],
         "trl is not installed: pip install 'corl-gym[train,trl]'"),
        ("datasets", ["bench", "--dataset", "math500", "--allow-download", "--quiet"], "pip install 'corl-gym[data]'"),
    ]


def test_every_missing_extra_is_one_line_with_its_pip_install(tmp_path):
    for blocked, argv, expected in missing_extras(tmp_path):
        env = {k: v for k, v in __import__("os").environ.items() if k not in ("CORL_DATA_DIR", "CORL_ALLOW_DOWNLOAD")}
        done = subprocess.run([sys.executable, "-c", BLOCKED_RUN, blocked, *argv], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 2, (argv, done.stderr[-2000:])
        assert done.stderr.count("\n") == 1 and expected in done.stderr, (argv, done.stderr[-2000:])


def test_plots_without_matplotlib_are_a_note_not_a_failure(tmp_path):
    done = subprocess.run([sys.executable, "-c", BLOCKED_RUN, "matplotlib", "bench", "--policies", "always-self",
                           "--budgets", "low", "--limit", "3", "--quiet", "--out", "b"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and "pareto.png skipped: pip install 'corl-gym[plot]'" in done.stderr
    assert (tmp_path / "b" / "summary.md").is_file()


def test_version_and_list(capsys):
    assert run_cli(["--version"], capsys)[:2] == (0, f"corl-gym {__version__}\n")
    code, out, _ = run_cli(["list"], capsys)
    lines = dict(line.split(":", 1) for line in out.splitlines())
    assert code == 0 and set(lines) == {"env ids", "datasets", "pools", "policies", "budgets", "learners", "verbs"}
    from corl_gym.agents.routers import BASELINES

    policies = {p.strip() for p in lines["policies"].split(",")}
    assert set(BASELINES) | {"always:<expert>", "sb3:<model.zip>", "api:<pool entry>"} <= policies
    assert "mixed" in lines["budgets"] and "dollar amount" in lines["budgets"]


SHARED = {  # verb -> the shared flags it must take
    ("bench",): ["--pool", "--dataset", "--budgets", "--budget", "--seeds", "--seed", "--limit", "--out", "--quiet",
                 "--allow-download"],
    ("train", "--learner", "sb3-ppo"): ["--pool", "--dataset", "--budget", "--seed", "--out", "--quiet",
                                        "--allow-download"],
    ("train", "--learner", "ppo"): ["--pool", "--dataset", "--budget", "--seed", "--out", "--quiet",
                                    "--allow-download"],
    ("train", "--learner", "sft"): ["--pool", "--dataset", "--seed", "--out", "--quiet", "--allow-download"],
    ("train", "--learner", "trl-grpo"): ["--pool", "--dataset", "--budgets", "--seed", "--out", "--quiet",
                                         "--allow-download"],
    ("eval",): ["--pool", "--dataset", "--budgets", "--budget", "--seeds", "--seed", "--limit", "--out", "--quiet",
                "--allow-download"],
    ("record",): ["--pool", "--dataset", "--seed", "--limit", "--out", "--quiet", "--allow-download"],
}


@pytest.mark.parametrize("verb", list(SHARED), ids=[" ".join(v) for v in SHARED])
def test_every_verb_speaks_the_shared_vocabulary(verb, capsys):
    code, out, _ = run_cli([*verb, "--help"], capsys)
    assert code == 0
    flags = set(out.replace(",", " ").replace("[", " ").replace("]", " ").split())
    assert set(SHARED[verb]) <= flags, set(SHARED[verb]) - flags


def test_budget_grammar_is_the_same_everywhere(capsys):
    from corl_gym.agents.config import parse_config
    from corl_gym.agents.ppo.config import PPOConfig
    from corl_gym.cli import _parser

    assert parse_config(PPOConfig, ["--budget", "$0.02"]).budget == 0.02
    from corl_gym.agents.sb3 import SB3Config

    assert parse_config(SB3Config, ["--learner", "sb3-ppo", "--budget", "mixed"]).budget == "mixed"
    assert _parser().parse_args(["bench", "--budgets", "low,mixed,0.005"]).budgets == ["low", "mixed", 0.005]
    assert _parser().parse_args(["bench", "--seed", "3"]).seeds == [3]


def test_every_sb3_field_is_a_flag_with_its_help_line():
    import dataclasses

    from corl_gym.agents.config import build_parser
    from corl_gym.agents.sb3 import LEARNERS, SB3Config
    from corl_gym.cli import SB3_LEARNERS

    actions = {flag: a for a in build_parser(SB3Config)._actions for flag in a.option_strings}
    for f in dataclasses.fields(SB3Config):
        action = actions["--" + f.name.replace("_", "-")]
        assert action.dest == f.name and f.metadata["help"] and action.help.startswith(f.metadata["help"]), f.name
    assert actions["--env"].dest == "env_id" and tuple(actions["--learner"].choices) == LEARNERS
    assert SB3_LEARNERS == LEARNERS


def _sb3_config_of(argv: list[str], monkeypatch) -> object:
    """The config `corl-gym train ARGV` hands the SB3 trainer (which is not run)."""
    import corl_gym.agents.sb3 as sb3

    seen = []
    monkeypatch.setattr(sb3, "train", lambda config: seen.append(config) or Path(config.out) / "model.zip")
    assert main(["train", *argv]) == 0
    return seen[0]


def test_the_old_sb3_flags_give_the_config_they_gave_before(monkeypatch, capsys):
    from corl_gym.agents.sb3 import SB3Config

    config = _sb3_config_of(["--learner", "sb3-dqn", "--env", "CORL-Routing-v0", "--seed", "3", "--budget", "$0.005",
                             "--train-limit", "0", "--features", "none", "--dataset", "synthetic", "--pool", "paper",
                             "--timesteps", "64", "--test-fraction", "0.25", "--out", "r", "--quiet"], monkeypatch)
    # what the hand-built `train` flags made of the same command line
    assert config == SB3Config(learner="sb3-dqn", env_id="CORL-Routing-v0", seed=3, budget=0.005, train_limit=None,
                               features="none", dataset="synthetic", pool="paper", timesteps=64, test_fraction=0.25,
                               out="r", progress=False)
    assert "benchmark it with: corl-gym bench --pool paper --policies sb3:r/model.zip,best-fixed,oracle" in (
        capsys.readouterr().out)
    assert _sb3_config_of(["--learner", "sb3-ppo", "--train-limit", "40", "--seeds", "2", "--budgets", "low"],
                          monkeypatch) == SB3Config(learner="sb3-ppo", train_limit=40, seed=2, budget="low")
    assert _sb3_config_of(["--learner=sb3-maskable-ppo"], monkeypatch) == SB3Config()
    assert _sb3_config_of(["--learner", "sb3-ppo", "--net-arch", "64,32", "--learning-rate", "0.001", "--n-envs", "2"],
                          monkeypatch) == SB3Config(learner="sb3-ppo", net_arch=(64, 32), learning_rate=0.001, n_envs=2)


@pytest.mark.parametrize("argv, expected", [
    (["--n-envs", "0"], "argument --n-envs: expected an integer >= 1, got '0'"),
    (["--net-arch", "64,x"], "argument --net-arch: expected an integer >= 1, got 'x'"),
    (["--env", "CORL-Routing-v2"], "argument --env-id/--env: invalid choice: 'CORL-Routing-v2'"),
    (["--features", "embeddings"], "argument --features: invalid choice: 'embeddings'"),
    (["--train-limit", "-1"], "argument --train-limit: expected an integer >= 0, got '-1'"),
])
def test_a_bad_sb3_flag_is_one_line(argv, expected, capsys):
    code, _, err = run_cli(["train", "--learner", "sb3-ppo", *argv], capsys)
    assert code == 2 and err.count("\n") == 1 and err.startswith("corl-gym train --learner sb3-ppo: error: ")
    assert expected in err


def test_record_and_sb3_training_show_progress(tmp_path, capsys):
    pytest.importorskip("sb3_contrib")
    assert main(["record", "--pool", "sim-paper", "--dataset", "synthetic", "--limit", "3",
                 "--out", str(tmp_path / "r.jsonl")]) == 0
    assert "record: 100%" in capsys.readouterr().err
    assert main(["train", "--learner", "sb3-ppo", "--timesteps", "256", "--train-limit", "20",
                 "--out", str(tmp_path / "router")]) == 0
    assert "train: 100%" in capsys.readouterr().err
    assert main(["record", "--pool", "sim-paper", "--dataset", "synthetic", "--limit", "4", "--quiet",
                 "--out", str(tmp_path / "r.jsonl")]) == 0
    assert "%" not in capsys.readouterr().err


def test_record_writes_a_replay_pool_that_bench_replays(tmp_path, capsys):
    out = tmp_path / "runs" / "sim.jsonl"
    record = ["record", "--pool", "sim-paper", "--dataset", "synthetic", "--limit", "40", "--quiet", "--out", str(out)]
    assert main(record) == 0
    printed = capsys.readouterr().out
    assert f"corl-gym bench --pool {tmp_path / 'runs' / 'sim_pool.yaml'}" in printed
    assert "simulated (simulated or replayed experts: no money spent)" in printed
    recorded = [json.loads(line) for line in out.read_text().splitlines()]
    assert main(["bench", "--pool", str(tmp_path / "runs" / "sim_pool.yaml"), "--limit", "0", "--quiet",
                 "--policies", "always:o3,always:gpt-4.1-nano", "--budgets", "high"]) == 0
    table = capsys.readouterr().out
    from corl_gym.benchmarks.bench import BenchConfig, run_bench

    rows = run_bench(BenchConfig(pools=[str(tmp_path / "runs" / "sim_pool.yaml")], policies=["always:o3"],
                                 budgets=["high"], limit=None, progress=False, references=False)).rows
    truth = {r["problem_id"]: r["correct"] for r in recorded if r["model"] == "o3"}
    assert rows and all(r["correct"] == truth[r["problem_id"]] for r in rows)  # the replay is the recording
    assert "simulated $/query" in table


def test_eval_takes_the_shared_flags_and_adds_curve_references(micro_model_dir, tmp_path, capsys):
    assert main(["eval", "--checkpoint", str(micro_model_dir), "--seeds", "0,1", "--budgets", "mixed,$0.02",
                 "--limit", "3", "--max-new-tokens", "16", "--out", str(tmp_path / "eval")]) == 0
    err = capsys.readouterr().err
    assert "eval: 100%" in err
    rows = [json.loads(line) for line in (tmp_path / "eval" / "eval_rows.jsonl").read_text().splitlines()]
    assert {(r["seed"], r["budget"]) for r in rows} == {(s, b) for s in (0, 1) for b in ("mixed", "$0.02")}
    assert {r["policy"] for r in rows} == {"micro"} and len(rows) == 2 * 2 * 3
    table = (tmp_path / "eval" / "eval.md").read_text()
    assert "| always-self (reference) | mixed |" in table and "APGR" in table and "simulated $/query" in table

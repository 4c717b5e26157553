"""The `corl-gym` command line.

    corl-gym bench [--policies P,...] [--budgets low,medium,high,mixed,0.005] [--dataset NAME|PATH,...]
                   [--pool NAME|YAML,...] [--seeds S,...] [--limit N] [--train-limit N] [--out DIR] [--quiet]
                   [--cache PATH] [--cache-mode MODE] [--max-spend USD] [--max-spend-scope total|run]
                   [--allow-download]
    corl-gym train --learner sb3-maskable-ppo|sb3-ppo|sb3-dqn [--pool P] [--dataset D] [--budget B] [--seed S]
                   [--env ID] [--features F] ...
    corl-gym train --learner ppo|sft|trl-grpo [the learner's own flags, same vocabulary]
    corl-gym eval --checkpoint DIR [--budgets ...] [--seeds ...] [...]
    corl-gym record --pool POOL --dataset NAME --out FILE.jsonl [...]
    corl-gym list
    corl-gym --version

`bench` with no flags runs every baseline router x 3 budgets on 200 built-in synthetic test problems
with the simulated paper pool (`sim-paper`): no network, no GPU, no data files. Comma lists multiply:
every policy x budget x dataset x pool x seed. The flags every verb shares and the way mistakes are
reported (one line, exit 2) are in `corl_gym.cli_args`.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from corl_gym import __version__, cli_args
from corl_gym.cli_args import Parser, comma_list

SB3_LEARNERS = ("sb3-maskable-ppo", "sb3-ppo", "sb3-dqn")
# Learners and verbs that own their flags: the rest of the command line goes to `module:main(argv)`. The SB3
# learners share one main, which reads which of them to train from its `--learner` flag.
FORWARDED_LEARNERS = {
    **dict.fromkeys(SB3_LEARNERS, "corl_gym.agents.sb3:main"),
    "ppo": "corl_gym.agents.ppo.train:main",
    "sft": "corl_gym.agents.sft:main",
    "trl-grpo": "corl_gym.agents.trl:main",
}
FORWARDED_VERBS = {"eval": "corl_gym.agents.evaluate:main", "record": "corl_gym.experts.record:main"}


def _parser() -> argparse.ArgumentParser:
    parser = Parser(prog="corl-gym", description="Cost-aware LLM routing: environments and benchmarks.")
    parser.add_argument("--version", action="version", version=f"corl-gym {__version__}")
    verbs = parser.add_subparsers(dest="verb", required=True, parser_class=Parser)
    bench = verbs.add_parser("bench", help="benchmark routing policies: accuracy and dollars per budget")
    bench.add_argument("--policies", type=comma_list, default=None,
                       help="comma list (default: every baseline; `corl-gym list` shows them)")
    cli_args.add_budgets(bench)
    cli_args.add_dataset(bench, many=True)
    cli_args.add_pool(bench, many=True, default=["sim-paper"])
    cli_args.add_seeds(bench)
    cli_args.add_limit(bench, 200)
    bench.add_argument("--train-limit", type=cli_args.nonnegative_int, default=1000,
                       help="training problems for learned routers, an integer >= 0; 0: all (default: 1000)")
    bench.add_argument("--test-fraction", type=cli_args.fraction, default=0.5,
                       help="share of each dataset held out for testing, in (0, 1] (default: 0.5)")
    bench.add_argument("--at-cost", type=cli_args.dollars, default=None,
                       help="report accuracy at this $/query (default: the low threshold)")
    bench.add_argument("--target-accuracy", type=cli_args.fraction, default=None,
                       help="report $/query to reach it (default: the best expert's)")
    cli_args.add_out(bench, None, "folder for results.jsonl, summary.md and pareto.png (reruns resume)")
    cli_args.add_quiet(bench)
    bench.add_argument("--cache", default=None, help="expert cache file (SQLite), overriding the pools'")
    bench.add_argument("--cache-mode", choices=("off", "read-write", "replay-only", "record"), default=None,
                       help="expert cache mode (default read-write with --cache)")
    bench.add_argument("--max-spend", type=cli_args.dollars, default=None,
                       help="stop before expert calls spend more USD (see ledger.json)")
    bench.add_argument("--max-spend-scope", choices=("total", "run"), default="total",
                       help="the cap counts every run into --out (total, default) or this run alone")
    # every learner parses its own flags (`main` forwards them); this parser is only `train --help` and the
    # errors for a missing or unknown --learner
    train = verbs.add_parser("train", help="train a router (sb3-*) or an LLM controller (ppo, sft, trl-grpo)",
                             allow_abbrev=False)  # `--learn NAME` would pass here unforwarded
    train.add_argument("--learner", required=True, choices=list(FORWARDED_LEARNERS),
                       help="each learner takes its own flags: corl-gym train --learner NAME --help")
    verbs.add_parser("eval", help="evaluate a trained controller checkpoint across budgets and datasets",
                     add_help=False)
    verbs.add_parser("record", help="run live experts over a dataset and write a replay file", add_help=False)
    verbs.add_parser("list", help="list env ids, datasets, expert pools, policies and learners")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in FORWARDED_VERBS:
        return _forward(FORWARDED_VERBS[argv[0]], argv[1:], f"corl-gym {argv[0]}")
    learner = _forwarded_learner(argv)
    if learner is not None:  # the learner parses every flag itself, from its config's fields
        name, rest = learner
        rest = ["--learner", name, *rest] if name in SB3_LEARNERS else rest
        return _forward(FORWARDED_LEARNERS[name], rest, f"corl-gym train --learner {name}")
    args = cli_args.parse(_parser(), argv)
    if args.verb == "bench":  # the resume line after a signal repeats the command as given
        return cli_args.run_verb("corl-gym bench", _bench, args, argv)
    return cli_args.run_verb("corl-gym list", _list, args)  # `train` never gets here: forwarded above


def _bench(args: argparse.Namespace, argv: list[str]) -> int:
    from corl_gym.benchmarks.bench import BenchConfig, run_bench
    from corl_gym.interrupt import Interrupted, resume_line, stop_on_signals

    config = BenchConfig(
        policies=args.policies,
        budgets=args.budgets,
        datasets=args.dataset,
        pools=args.pool,
        seeds=args.seeds,
        limit=args.limit or None,
        train_limit=args.train_limit or None,
        test_fraction=args.test_fraction,
        at_cost=args.at_cost,
        target_accuracy=args.target_accuracy,
        out=args.out,
        progress=not args.quiet,
        cache=args.cache,
        cache_mode=args.cache_mode,
        max_spend=args.max_spend,
        max_spend_scope=args.max_spend_scope,
    )
    try:
        with stop_on_signals():
            result = run_bench(config)
    except Interrupted as stop:
        kept = (
            f"rows so far are in {args.out}/results.jsonl, spend in {args.out}/ledger.json"
            if args.out
            else "no --out: nothing was kept"
        )
        print(resume_line("corl-gym", argv, stop, kept), file=sys.stderr)
        return stop.exit_code
    for note in result.notes:
        print(f"corl-gym bench: {note}", file=sys.stderr)
    print(result.markdown)
    if args.out:
        plot = f", {result.plot}" if result.plot else ""
        print(f"\nwrote {args.out}/results.jsonl, {args.out}/summary.md{plot}, {args.out}/ledger.json")
    if result.stopped:
        print(f"corl-gym bench: stopped early: {result.stopped}", file=sys.stderr)
        return 3
    return 0


def _forwarded_learner(argv: list[str]) -> tuple[str, list[str]] | None:
    """(learner, the other arguments) for `train --learner NAME ...` with a forwarded learner, else None."""
    if not argv or argv[0] != "train":
        return None
    rest = argv[1:]
    for i, arg in enumerate(rest):
        if arg.startswith("--learner="):
            name, others = arg.split("=", 1)[1], rest[:i] + rest[i + 1:]
        elif arg == "--learner" and i + 1 < len(rest):
            name, others = rest[i + 1], rest[:i] + rest[i + 2:]
        else:
            continue
        return (name, others) if name in FORWARDED_LEARNERS else None
    return None


def _forward(target: str, argv: list[str], prog: str) -> int:
    module, function = target.split(":")
    return cli_args.run_verb(prog, lambda: getattr(importlib.import_module(module), function)(argv, prog=prog))


def _list(args: argparse.Namespace) -> int:
    from corl_gym.agents.routers import router_names
    from corl_gym.benchmarks.bench import EXTERNAL_POLICIES
    from corl_gym.budget import BUDGET_MODES, MIXED
    from corl_gym.data import DATASET_NAMES
    from corl_gym.experts import POOL_NAMES
    from corl_gym.registration import ENV_IDS

    print("env ids:  " + ", ".join(ENV_IDS))
    print("datasets: " + ", ".join(DATASET_NAMES)
          + " (or a JSONL path; named sets other than synthetic are read from CORL_DATA_DIR)")
    print("pools:    " + ", ".join(POOL_NAMES) + " (or a YAML path)")
    print("policies: " + ", ".join([*router_names(["<expert>"]), *EXTERNAL_POLICIES]))
    print("budgets:  " + ", ".join([*BUDGET_MODES, MIXED]) + " (drawn per episode), or a dollar amount such as 0.005")
    print("learners: " + ", ".join(FORWARDED_LEARNERS))
    print("verbs:    bench, train, eval, record, list (corl-gym VERB --help)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

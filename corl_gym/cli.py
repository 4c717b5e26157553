"""The `corl-gym` command line.

    corl-gym bench [--policies P,...] [--budgets low,medium,high] [--dataset NAME|PATH,...]
                   [--pool NAME|YAML,...] [--seeds S,...] [--limit N] [--train-limit N] [--out DIR]
                   [--cache PATH] [--cache-mode MODE] [--max-spend USD] [--max-spend-scope total|run]
    corl-gym train --learner sb3-maskable-ppo|sb3-ppo|sb3-dqn [--pool P] [--dataset D] [--out DIR] ...
    corl-gym train --learner ppo|sft [the learner's own flags]
    corl-gym eval --checkpoint DIR [...]
    corl-gym record --pool POOL --dataset NAME [...]
    corl-gym list

`bench` with no flags runs every baseline router x 3 budgets on 200 built-in synthetic test problems
with the simulated paper pool (`sim-paper`): no network, no GPU, no data files. Comma lists multiply:
every policy x budget x dataset x pool x seed.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Sequence

SB3_LEARNERS = ("sb3-maskable-ppo", "sb3-ppo", "sb3-dqn")
# Learners and verbs that own their flags: the rest of the command line goes to `module:main(argv)`.
FORWARDED_LEARNERS = {"ppo": "corl_gym.agents.ppo.train:main", "sft": "corl_gym.agents.sft:main", "trl-grpo": "corl_gym.agents.trl:main"}
FORWARDED_VERBS = {"eval": "corl_gym.agents.evaluate:main", "record": "corl_gym.experts.record:main"}


def _comma_list(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="corl-gym", description="Cost-aware LLM routing: environments and benchmarks.")
    verbs = parser.add_subparsers(dest="verb", required=True)
    bench = verbs.add_parser("bench", help="benchmark routing policies: accuracy and dollars per budget")
    bench.add_argument("--policies", type=_comma_list, default=None, help="comma list (default: every baseline)")
    bench.add_argument("--budgets", type=_comma_list, default=["low", "medium", "high"], help="comma list of budget modes")
    bench.add_argument("--dataset", type=_comma_list, default=None, help="dataset names or JSONL paths (default: the pool's, else synthetic)")
    bench.add_argument("--pool", type=_comma_list, default=["sim-paper"], help="expert pool names or YAML paths")
    bench.add_argument("--seeds", "--seed", type=lambda t: [int(x) for x in _comma_list(t)], default=[0], help="comma list of seeds")
    bench.add_argument("--limit", type=int, default=200, help="test problems per dataset (0: all)")
    bench.add_argument("--train-limit", type=int, default=1000, help="training problems for learned routers (0: all)")
    bench.add_argument("--test-fraction", type=float, default=0.5, help="share of each dataset held out for testing")
    bench.add_argument("--at-cost", type=float, default=None, help="report accuracy at this $/query (default: the low threshold)")
    bench.add_argument("--target-accuracy", type=float, default=None, help="report $/query to reach it (default: the best expert's)")
    bench.add_argument("--out", default=None, help="folder for results.jsonl, summary.md and pareto.png (reruns resume)")
    bench.add_argument("--quiet", action="store_true", help="no progress bar")
    bench.add_argument("--cache", default=None, help="expert cache file (SQLite), overriding the pools'")
    bench.add_argument("--cache-mode", choices=("off", "read-write", "replay-only", "record"), default=None,
                       help="expert cache mode (default read-write with --cache)")
    bench.add_argument("--max-spend", type=float, default=None, help="stop before expert calls spend more USD (see ledger.json)")
    bench.add_argument("--max-spend-scope", choices=("total", "run"), default="total",
                       help="the cap counts every run into --out (total, default) or this run alone")
    train = verbs.add_parser("train", help="train a router (sb3-*) or an LLM controller (ppo, sft, trl-grpo)")
    learners = ", ".join([*SB3_LEARNERS, *FORWARDED_LEARNERS])
    train.add_argument("--learner", required=True, help=f"one of {learners}; ppo and sft take their own flags")
    train.add_argument("--pool", default="sim-paper", help="an expert pool name or a YAML path")
    train.add_argument("--dataset", default=None, help="a dataset name or JSONL path (default: the pool's, else synthetic)")
    train.add_argument("--budget", default="mixed", help="budget mode(s) to train on (default: mixed)")
    train.add_argument("--timesteps", type=int, default=None, help="environment steps (default: the learner's)")
    train.add_argument("--train-limit", type=int, default=None, help="training problems (default: all of the train split)")
    train.add_argument("--test-fraction", type=float, default=0.5, help="held-out share, as in bench")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--out", default="runs/router", help="folder for the trained model")
    verbs.add_parser("eval", help="evaluate a trained controller checkpoint across budgets and datasets", add_help=False)
    verbs.add_parser("record", help="run live experts over a dataset and write a replay file", add_help=False)
    verbs.add_parser("list", help="list env ids, datasets, expert pools and policies")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in FORWARDED_VERBS:
        return _forward(FORWARDED_VERBS[argv[0]], argv[1:], f"corl-gym {argv[0]}")
    learner = _forwarded_learner(argv)
    if learner is not None:  # the learner parses every flag itself (ours would swallow --out, --seed, ...)
        name, rest = learner
        return _forward(FORWARDED_LEARNERS[name], rest, f"corl-gym train --learner {name}")
    args = _parser().parse_args(argv)
    try:
        if args.verb == "bench":
            return _bench(args, argv)
        if args.verb == "train":
            return _train(args)
        return _list()
    except (ValueError, FileNotFoundError) as exc:
        print(f"corl-gym {args.verb}: error: {exc}", file=sys.stderr)
        return 2


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
        kept = f"rows so far are in {args.out}/results.jsonl, spend in {args.out}/ledger.json" if args.out else "no --out: nothing was kept"
        print(resume_line("corl-gym", argv, stop, kept), file=sys.stderr)
        return stop.exit_code
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
    try:
        entry = getattr(importlib.import_module(module), function)
    except ImportError as exc:
        print(f"{prog}: unavailable: {exc}. Install the extras it needs, e.g. pip install 'corl-gym[train]'", file=sys.stderr)
        return 2
    return int(entry(argv, prog=prog) or 0)


def _train(args: argparse.Namespace) -> int:
    if args.learner not in SB3_LEARNERS:
        valid = ", ".join([*SB3_LEARNERS, *FORWARDED_LEARNERS])
        raise ValueError(f"unknown learner {args.learner!r}: use one of {valid}")
    from corl_gym.agents.sb3 import SB3Config, train

    config = SB3Config(
        learner=args.learner, pool=args.pool, dataset=args.dataset, budget=args.budget, seed=args.seed,
        train_limit=args.train_limit, test_fraction=args.test_fraction, out=args.out,
        **({"timesteps": args.timesteps} if args.timesteps else {}),
    )
    path = train(config)
    print(f"saved {path}; benchmark it with: corl-gym bench --pool {args.pool} --policies sb3:{path},best-fixed,oracle")
    return 0


def _list() -> int:
    from corl_gym.agents.routers import BASELINES
    from corl_gym.data import DATASET_NAMES
    from corl_gym.experts import POOL_NAMES
    from corl_gym.registration import ENV_IDS

    print("env ids:  " + ", ".join(ENV_IDS))
    print("datasets: " + ", ".join(DATASET_NAMES) + " (or a JSONL path)")
    print("pools:    " + ", ".join(POOL_NAMES) + " (or a YAML path)")
    print("policies: " + ", ".join(BASELINES) + ", always:<expert>, sb3:<model.zip>")
    print("learners: " + ", ".join([*SB3_LEARNERS, *FORWARDED_LEARNERS]))
    return 0


if __name__ == "__main__":
    sys.exit(main())

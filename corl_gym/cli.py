"""The `corl-gym` command line.

    corl-gym bench [--policies P,...] [--budgets low,medium,high] [--dataset NAME|PATH] [--pool NAME|YAML]
                   [--limit N] [--seed S] [--out DIR]
    corl-gym list

`bench` with no flags runs every baseline router x 3 budgets on 200 built-in synthetic problems with the
simulated paper pool (`sim-paper`): no network, no GPU, no data files.
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence


def _comma_list(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="corl-gym", description="Cost-aware LLM routing: environments and benchmarks.")
    verbs = parser.add_subparsers(dest="verb", required=True)
    bench = verbs.add_parser("bench", help="benchmark routing policies: accuracy and dollars per budget")
    bench.add_argument("--policies", type=_comma_list, default=None, help="comma list (default: every baseline)")
    bench.add_argument("--budgets", type=_comma_list, default=["low", "medium", "high"], help="comma list of budget modes")
    bench.add_argument("--dataset", default=None, help="a dataset name or a JSONL path (default: the pool's, else synthetic)")
    bench.add_argument("--pool", default="sim-paper", help="an expert pool name or a YAML path")
    bench.add_argument("--limit", type=int, default=200, help="first N problems (0: all)")
    bench.add_argument("--seed", type=int, default=0)
    bench.add_argument("--out", default=None, help="folder for results.jsonl and summary.md")
    bench.add_argument("--quiet", action="store_true", help="no progress bar")
    verbs.add_parser("list", help="list env ids, datasets, expert pools and policies")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.verb == "bench":
            return _bench(args)
        return _list()
    except (ValueError, FileNotFoundError) as exc:
        print(f"corl-gym {args.verb}: error: {exc}", file=sys.stderr)
        return 2


def _bench(args: argparse.Namespace) -> int:
    from corl_gym.benchmarks.bench import BenchConfig, run_bench

    config = BenchConfig(
        policies=args.policies,
        budgets=args.budgets,
        dataset=args.dataset,
        pool=args.pool,
        limit=args.limit or None,
        seed=args.seed,
        out=args.out,
        progress=not args.quiet,
    )
    _, summary = run_bench(config)
    print(summary)
    if args.out:
        print(f"\nwrote {args.out}/results.jsonl and {args.out}/summary.md")
    return 0


def _list() -> int:
    from corl_gym.agents.routers import BASELINES
    from corl_gym.data import DATASET_NAMES
    from corl_gym.experts import POOL_NAMES
    from corl_gym.registration import ENV_IDS

    print("env ids:  " + ", ".join(ENV_IDS))
    print("datasets: " + ", ".join(DATASET_NAMES) + " (or a JSONL path)")
    print("pools:    " + ", ".join(POOL_NAMES) + " (or a YAML path)")
    print("policies: " + ", ".join(BASELINES) + ", always:<expert>")
    return 0


if __name__ == "__main__":
    sys.exit(main())

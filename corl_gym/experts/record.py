"""`corl-gym record`: run a pool's live experts over a dataset and write a replay file.

    corl-gym record --pool POOL --dataset NAME --out FILE.jsonl [--limit N] [--experts a,b]
                    [--max-spend USD] [--cache PATH] [--cache-mode MODE] [--chunk N] [--prompt TEMPLATE]
                    [--seed S] [--quiet]

Each expert gets each problem once (the query is `--prompt` with `{problem}` filled in), all calls of a
chunk concurrently through `Pool.acall_many` (so `concurrency`, `rpm`, `tpm` and retries apply). A row per
(problem, model) is appended to `FILE.jsonl` in the replay schema of the data README §2 (`problem_id`,
`model`, `correct`, `answer`, `prompt_tokens`, `completion_tokens`, `cost_usd`, `source`), which the `replay`
backend reads, so an expensive expert is paid for once and replayed forever. The problems go to
`<stem>_problems.jsonl` beside it (`problem_id`, `problem`, `answer`), which lets replay match problems by
text. `correct` is `corl_gym.verify.check` of the reply's stated answer against the gold answer.
`<stem>_pool.yaml` beside it is a replay pool of what was recorded (the source pool's controller, budgets
and prices; its default dataset the problems file), so `corl-gym bench --pool <stem>_pool.yaml` replays
the run at no cost.

Decisions: a failed call writes no row (a replayed failure would be a wrong answer forever); it is
counted, and a rerun with the same `--out` resumes, skipping the (problem, model) pairs already written.
The run's ledger goes to `<stem>.ledger.json`. `--max-spend` stops the run before a call would pass the
cap (the ledger's rule); rows written so far stay, and the exit code is 3.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any, Sequence

import yaml
from tqdm import tqdm

from corl_gym import cli_args
from corl_gym.data import Problem, load_problems
from corl_gym.experts.cache import MODES, CacheConfig
from corl_gym.experts.ledger import Ledger
from corl_gym.experts.pool import Pool, load_pool, pool_path

DEFAULT_PROMPT = "{problem}\n\nPlease reason step by step, and put your final answer within \\boxed{{}}."
EXIT_STOPPED = 3


def _parser(prog: str) -> argparse.ArgumentParser:
    parser = cli_args.Parser(prog=prog, description="Run live experts over a dataset; write a replay file and its pool.")
    cli_args.add_pool(parser, default=None, required=True)
    cli_args.add_dataset(parser, required=True)
    parser.add_argument("--out", required=True, help="the replay JSONL to write (appended to; reruns resume)")
    cli_args.add_limit(parser, None, "first N problems")
    parser.add_argument("--experts", type=cli_args.comma_list, default=None, help="comma list of the pool's experts (default: all)")
    parser.add_argument("--max-spend", type=cli_args.dollars, default=None, help="stop before spending more than this many USD")
    parser.add_argument("--cache", default=None, help="expert cache file (SQLite), overriding the pool's")
    parser.add_argument("--cache-mode", choices=MODES, default=None, help="cache mode (default read-write with --cache)")
    parser.add_argument("--chunk", type=cli_args.positive_int, default=256, help="calls sent at once (rows are written per chunk)")
    parser.add_argument("--prompt", default=DEFAULT_PROMPT, help="query template with {problem}")
    cli_args.add_seeds(parser, many=False)
    cli_args.add_quiet(parser)
    return parser


def main(argv: Sequence[str] | None = None, prog: str = "corl-gym record") -> int:
    return cli_args.run_verb(prog, _main, cli_args.parse(_parser(prog), argv), prog)


def _main(args: argparse.Namespace, prog: str) -> int:
    summary = record(
        pool=args.pool, dataset=args.dataset, out=args.out, limit=args.limit or None, experts=args.experts,
        max_spend=args.max_spend, cache=_cache_override(args.cache, args.cache_mode),
        chunk=args.chunk, prompt=args.prompt, seed=args.seed, progress=not args.quiet,
    )
    print(f"{prog}: wrote {summary['rows_written']} rows to {args.out} ({summary['skipped']} already there, "
          f"{summary['failed']} failed calls not written); replay them with: corl-gym bench --pool {summary['pool_file']}")
    print(summary["ledger_line"])
    if summary["stopped"]:
        print(f"{prog}: stopped early: {summary['stop_reason']}", file=sys.stderr)
        return EXIT_STOPPED
    return 0


def _cache_override(path: str | None, mode: str | None) -> CacheConfig | None:
    if path is None and mode is None:
        return None
    return CacheConfig(path=path, mode=mode or "read-write")


def record(pool: str, dataset: str, out: str | Path, *, limit: int | None = None, experts: list[str] | None = None,
           max_spend: float | None = None, cache: CacheConfig | None = None, chunk: int = 256,
           prompt: str = DEFAULT_PROMPT, seed: int = 0, progress: bool = False) -> dict[str, Any]:
    """Record; returns counts, the ledger line, the replay pool file and whether the spend cap stopped the run."""
    out = Path(out)
    ledger = Ledger(max_spend)
    loaded = load_pool(pool, seed=seed, ledger=ledger, cache=cache)
    try:
        names = experts or loaded.expert_names()
        unknown = [name for name in names if name not in loaded.experts]
        if unknown:
            raise ValueError(f"pool {pool!r} has no expert {', '.join(unknown)}; experts: {', '.join(loaded.experts)}")
        models = {name: loaded.get(name).spec.model for name in names}
        problems = load_problems(dataset, limit=limit)
        _write_problems(out, problems)
        done = _recorded(out)
        todo = [(n, p) for p in problems for n in names if (p.id, models[n]) not in done]
        written, failed = _run(loaded, todo, models, out, prompt, max(1, chunk), pool, progress)
        pool_file = write_replay_pool(out, pool, loaded, names)
    finally:
        loaded.close()
        ledger.write(out.with_name(out.stem + ".ledger.json"))
    return {"rows_written": written, "failed": failed, "skipped": len(problems) * len(names) - len(todo), "pool_file": str(pool_file),
            "stopped": ledger.stopped, "stop_reason": ledger.stop_reason, "ledger_line": ledger.summary()}


def _run(pool: Pool, todo: list[tuple[str, Problem]], models: dict[str, str], out: Path, prompt: str,
         chunk: int, pool_label: str, progress: bool = False) -> tuple[int, int]:
    from corl_gym import verify
    from corl_gym.protocol import stated_answer  # lazy: verification pulls in sympy

    written = failed = 0
    out.parent.mkdir(parents=True, exist_ok=True)
    bar = tqdm(total=len(todo), desc="record", unit="call", disable=not progress, file=sys.stderr)
    with bar, open(out, "a", encoding="utf-8") as handle:
        for start in range(0, len(todo), chunk):
            batch = todo[start:start + chunk]
            calls = [(name, prompt.format(problem=p.problem), p) for name, p in batch]
            replies = asyncio.run(pool.acall_many(calls))
            for (name, problem), reply in zip(batch, replies):
                if not reply.ok:
                    failed += 1
                    continue
                verdict = verify.check(stated_answer(reply.text), problem.answer)
                row = {"problem_id": problem.id, "model": models[name], "correct": verdict is verify.Verdict.CORRECT,
                       "answer": verify.extract_answer(reply.text), "prompt_tokens": reply.prompt_tokens,
                       "completion_tokens": reply.completion_tokens, "cost_usd": reply.cost_usd,
                       "source": f"corl-gym record: pool {pool_label}, expert {name}"}
                handle.write(json.dumps(row) + "\n")
                written += 1
            handle.flush()
            bar.update(len(batch))
            if pool.ledger is not None and pool.ledger.stopped:
                break
    return written, failed


def write_replay_pool(out: Path, source: str, pool: Pool, names: list[str]) -> Path:
    """`<stem>_pool.yaml` beside `out`: the recorded experts as `replay` entries (their prices and
    expected lengths kept, so routers see the same costs), the source pool's controller and budgets."""
    raw = yaml.safe_load(pool_path(source).read_text(encoding="utf-8"))
    experts = []
    for name in names:
        spec = pool.get(name).spec
        entry = {"name": name, "backend": "replay", "model": spec.model, "description": f"{spec.description} (replayed)",
                 "price_in": spec.price_in, "price_out": spec.price_out, "file": out.name}
        if "expected_completion_tokens" in spec.options:
            entry["expected_completion_tokens"] = spec.options["expected_completion_tokens"]
        experts.append(entry)
    path = out.with_name(out.stem + "_pool.yaml")
    document = {"name": out.stem, "description": f"Replay of `corl-gym record --pool {source}` ({out.name}).",
                "dataset": out.stem + "_problems.jsonl", "budgets": raw["budgets"],
                "controller": raw["controller"], "experts": experts}
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return path


def _recorded(out: Path) -> set[tuple[str, str]]:
    """(problem_id, model) pairs already in `out`; lines cut short by an interrupted run are dropped from
    the file (the replay backend refuses unreadable lines), so those pairs are simply recorded again."""
    rows = _read_jsonl(out, "model")
    if out.is_file() and len(rows) != len([line for line in out.read_text(encoding="utf-8").splitlines() if line.strip()]):
        out.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return {(str(row["problem_id"]), str(row["model"])) for row in rows}


def _write_problems(out: Path, problems: list[Problem]) -> None:
    path = out.with_name(out.stem + "_problems.jsonl")
    known = {str(row["problem_id"]) for row in _read_jsonl(path, "problem")}
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as handle:
        for p in problems:
            if p.id not in known:
                kept = {key: value for key, value in (("level", p.level), ("subject", p.subject)) if value is not None}
                handle.write(json.dumps({"problem_id": p.id, "problem": p.problem, "answer": p.answer, **kept}) + "\n")


def _read_jsonl(path: Path, key: str) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict) and "problem_id" in row and key in row:
            rows.append(row)
    return rows


if __name__ == "__main__":
    sys.exit(main())

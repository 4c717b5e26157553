"""`corl-gym record`: run a pool's live experts over a dataset and write a replay file.

    corl-gym record --pool POOL --dataset NAME --out FILE.jsonl [--limit N] [--experts a,b]
                    [--max-spend USD] [--cache PATH] [--cache-mode MODE] [--chunk N] [--prompt TEMPLATE]
                    [--seed S] [--quiet]

Each expert gets each problem once (the query is `--prompt` with `{problem}` filled in), up to `--chunk`
calls in flight at once through `Pool.acall_many` (so `concurrency`, `rpm`, `tpm` and retries apply). A row per
(problem, model) is appended to `FILE.jsonl` in the replay schema (`problem_id`,
`model`, `correct`, `answer`, `prompt_tokens`, `completion_tokens`, `cost_usd`, `source`), which the `replay`
backend reads, so an expensive expert is paid for once and replayed forever. The problems go to
`<stem>_problems.jsonl` beside it (`problem_id`, `problem`, `answer`), which lets replay match problems by
text. `correct` is `corl_gym.verify.check` of the reply's stated answer against the gold answer.
`<stem>_pool.yaml` beside it is a replay pool of what was recorded (the source pool's controller, budgets
and prices; its default dataset the problems file), so `corl-gym bench --pool <stem>_pool.yaml` replays
the run at no cost.

Decisions: each row is appended (and flushed) the moment its call finishes, so a run killed at any point
(kill -9 included) loses at most the calls in flight. A failed call writes no row (a replayed failure
would be a wrong answer forever); it is counted, and a rerun with the same `--out` resumes, skipping the
(problem, model) pairs already written (a cut last line is cut off first; `corl_gym.run_files`). One run
at a time records a file (an OS lock on `FILE.jsonl.lock`; a second run fails at once naming the first's
pid). The ledger goes to `<stem>.ledger.json` and adds up over reruns; `--max-spend` stops the run
before a call could pass the cap, on the total of every run into the file or, with
`--max-spend-scope run`, on this run's (the ledger's rule); rows written so far stay, and the exit code
is 3, as for a miss in `--cache-mode replay-only`. Ctrl-C or SIGTERM stops it cleanly: rows and ledger
written, one line saying how to resume, exit code 130 or 143.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from tqdm import tqdm

from corl_gym import cli_args
from corl_gym.data import Problem, load_problems
from corl_gym.experts.base import ExpertReply
from corl_gym.experts.cache import MODES, CacheConfig
from corl_gym.experts.ledger import SCOPES, Ledger
from corl_gym.experts.pool import Pool, load_pool, pool_path
from corl_gym.interrupt import Interrupted, resume_line, stop_on_signals
from corl_gym.run_files import RowWriter, WriterLock, resume_rows

DEFAULT_PROMPT = "{problem}\n\nPlease reason step by step, and put your final answer within \\boxed{{}}."
EXIT_STOPPED = 3


def _parser(prog: str) -> argparse.ArgumentParser:
    parser = cli_args.Parser(prog=prog,
                             description="Run live experts over a dataset; write a replay file and its pool.")
    cli_args.add_pool(parser, default=None, required=True)
    cli_args.add_dataset(parser, required=True)
    parser.add_argument("--out", required=True, help="the replay JSONL to write (appended to; reruns resume)")
    cli_args.add_limit(parser, None, "first N problems")
    parser.add_argument("--experts", type=cli_args.comma_list, default=None,
                        help="comma list of the pool's experts (default: all)")
    parser.add_argument("--max-spend", type=cli_args.dollars, default=None,
                        help="stop before spending more than this many USD")
    parser.add_argument("--max-spend-scope", choices=SCOPES, default="total",
                        help="the cap counts every run into --out (total, default) or this run alone")
    parser.add_argument("--cache", default=None, help="expert cache file (SQLite), overriding the pool's")
    parser.add_argument("--cache-mode", choices=MODES, default=None,
                        help="cache mode (default read-write with --cache)")
    parser.add_argument("--chunk", type=cli_args.positive_int, default=256,
                        help="calls in flight at once (each row is written as its call ends)")
    parser.add_argument("--prompt", default=DEFAULT_PROMPT, help="query template with {problem}")
    cli_args.add_seeds(parser, many=False)
    cli_args.add_quiet(parser)
    return parser


def main(argv: Sequence[str] | None = None, prog: str = "corl-gym record") -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    return cli_args.run_verb(prog, _main, cli_args.parse(_parser(prog), argv), prog, argv)


def _main(args: argparse.Namespace, prog: str, argv: list[str]) -> int:
    try:
        with stop_on_signals():
            summary = record(
                pool=args.pool, dataset=args.dataset, out=args.out, limit=args.limit or None, experts=args.experts,
                max_spend=args.max_spend, max_spend_scope=args.max_spend_scope,
                cache=_cache_override(args.cache, args.cache_mode), chunk=args.chunk, prompt=args.prompt,
                seed=args.seed, progress=not args.quiet,
            )
    except Interrupted as stop:
        kept = f"rows so far are in {args.out}, spend in {_ledger_path(Path(args.out))}"
        print(resume_line(prog, argv, stop, kept), file=sys.stderr)
        return stop.exit_code
    print(f"{prog}: wrote {summary['rows_written']} rows to {args.out} ({summary['skipped']} already there, "
          f"{summary['failed']} failed calls not written); replay them with: "
          f"corl-gym bench --pool {summary['pool_file']}")
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
           max_spend: float | None = None, max_spend_scope: str = "total", cache: CacheConfig | None = None,
           chunk: int = 256, prompt: str = DEFAULT_PROMPT, seed: int = 0, progress: bool = False) -> dict[str, Any]:
    """Record; returns counts, the ledger line, the replay pool file and whether the run stopped early (spend
    cap, replay-only miss)."""
    out = Path(out)
    with WriterLock(out.with_name(out.name + ".lock"), f"replay file {out}"):
        done = {(str(row["problem_id"]), str(row["model"])) for row in resume_rows(out, ("problem_id", "model"))}
        ledger = Ledger(max_spend, scope=max_spend_scope, path=_ledger_path(out))
        try:
            loaded = load_pool(pool, seed=seed, ledger=ledger, cache=cache)
            try:
                names = experts or loaded.expert_names()
                unknown = [name for name in names if name not in loaded.experts]
                if unknown:
                    raise ValueError(
                        f"pool {pool!r} has no expert {', '.join(unknown)}; experts: {', '.join(loaded.experts)}"
                    )
                models = {name: loaded.get(name).spec.model for name in names}
                problems = load_problems(dataset, limit=limit)
                _write_problems(out, problems)
                todo = [(n, p) for p in problems for n in names if (p.id, models[n]) not in done]
                bar = tqdm(total=len(todo), desc="record", unit="call", disable=not progress, file=sys.stderr)
                with bar, RowWriter(out) as writer:
                    written, failed = asyncio.run(
                        _record_all(loaded, todo, models, writer, prompt, max(1, chunk), pool, bar)
                    )
                pool_file = write_replay_pool(out, pool, loaded, names)
            finally:
                loaded.close()
        finally:
            ledger.close()
    return {"rows_written": written, "failed": failed, "skipped": len(problems) * len(names) - len(todo),
            "pool_file": str(pool_file), "stopped": ledger.stopped, "stop_reason": ledger.stop_reason,
            "ledger_line": ledger.summary()}


def _ledger_path(out: Path) -> Path:
    return out.with_name(out.stem + ".ledger.json")


async def _record_all(pool: Pool, todo: list[tuple[str, Problem]], models: dict[str, str], writer: RowWriter,
                      prompt: str, window: int, pool_label: str, bar: Any = None) -> tuple[int, int]:
    """Call every (expert, problem) of `todo`, at most `window` at once, and write each row as its call ends;
    once the ledger stops (spend cap, replay-only miss) no further call starts. Returns (written, failed)."""
    slots = asyncio.Semaphore(window)
    counts = {"written": 0, "failed": 0}

    async def one(name: str, problem: Problem) -> None:
        async with slots:
            if pool.ledger is not None and pool.ledger.stopped:
                return
            [reply] = await pool.acall_many([(name, prompt.format(problem=problem.problem), problem)])
        if bar is not None:
            bar.update(1)
        if not reply.ok:
            counts["failed"] += reply.error_kind != "spend_cap"  # a refused call was never made
            return
        # verification may take up to its deadline: off the loop, so calls in flight keep going
        writer.write(await asyncio.to_thread(_row, reply, problem, models[name], f"pool {pool_label}, expert {name}"))
        counts["written"] += 1

    await asyncio.gather(*(one(name, problem) for name, problem in todo))
    return counts["written"], counts["failed"]


def _row(reply: ExpertReply, problem: Problem, model: str, source: str) -> dict[str, Any]:
    from corl_gym import verify
    from corl_gym.protocol import stated_answer  # lazy: verification pulls in sympy

    verdict = verify.check(stated_answer(reply.text), problem.answer)
    return {"problem_id": problem.id, "model": model, "correct": verdict is verify.Verdict.CORRECT,
            "answer": verify.extract_answer(reply.text), "prompt_tokens": reply.prompt_tokens,
            "completion_tokens": reply.completion_tokens, "cost_usd": reply.cost_usd,
            "source": f"corl-gym record: {source}"}


def write_replay_pool(out: Path, source: str, pool: Pool, names: list[str]) -> Path:
    """`<stem>_pool.yaml` beside `out`: the recorded experts as `replay` entries (their prices and
    expected lengths kept, so routers see the same costs), the source pool's controller and budgets."""
    raw = yaml.safe_load(pool_path(source).read_text(encoding="utf-8"))
    experts = []
    for name in names:
        spec = pool.get(name).spec
        entry = {"name": name, "backend": "replay", "model": spec.model,
                 "description": f"{spec.description} (replayed)",
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


def _write_problems(out: Path, problems: list[Problem]) -> None:
    path = out.with_name(out.stem + "_problems.jsonl")
    known = {str(row["problem_id"]) for row in resume_rows(path, ("problem_id", "problem"))}
    with RowWriter(path) as writer:
        for p in problems:
            if p.id not in known:
                kept = {key: value for key, value in (("level", p.level), ("subject", p.subject)) if value is not None}
                writer.write({"problem_id": p.id, "problem": p.problem, "answer": p.answer, **kept})


if __name__ == "__main__":
    sys.exit(main())

"""The routing benchmark: policies x budgets x datasets x pools x seeds -> episode rows and a report.

Every (policy, budget, problem) is one episode with the problem and budget pinned through
`reset(options=...)`, so a run is reproducible row for row with simulated or replayed experts.
Scripted and fitted routers and prompted API controllers (`api:<entry>`, `agents.api_controller`) act
in `CORL-Math-v0`; SB3 routers (`sb3:PATH`) act in the routing env they were trained in (`CORL-Routing-v1`
or `-v0`, saved with the model), which shares the pool, problems and reward code.

Problems are split by a stable hash of their id into train and test parts (`test_fraction`); every
policy is evaluated on the same test problems (`limit` caps them) and learned routers are fitted on the
train part (`train_limit` caps it). Rows are appended to `results.jsonl` as they finish (flushed one by
one); a rerun with the same `out` skips the rows it already has (resume). `summary.md` and `pareto.png`
are written at the end from every row of the run's configuration.

Before any episode runs, every (pool, dataset) pair is checked: a pair whose pool cannot answer the
dataset's problems (a replay pool has recorded answers for its own problems only) is skipped, and
`BenchResult.notes` says which and why (all pairs skipped is an error); a split too small to test on (or
to fit learned routers on) is an error naming the dataset and the split sizes. Budgets are the pool's
modes, `mixed` (a mode drawn per episode; the rows say `mixed`) or dollar amounts (rows say `$0.005`).

Curve metrics need reference points: the controller alone (`always-self`) and the single experts
(`always:<expert>`). When the policies given lack them and the pool's experts are simulated or replayed,
they run as extra policies marked as references in the table; with live experts they would cost money,
so the report says why the curve metrics are missing instead.

Resume is exact: an episode's row depends only on (pool, dataset, seed, policy, budget, problem), never
on which episodes ran before it in the same process (seeded policies draw per episode: `Router.reset`),
so a run interrupted and resumed any number of times has the rows of one uninterrupted run. One run at a
time writes an `out` (an OS lock on `out/.lock`: a second one fails at once naming the first's pid);
a cut last line is cut off before appending, and a damaged line is an error naming the file and line
(`corl_gym.run_files`).

Expert calls are booked in a ledger, `ledger.json` (spend, calls, retries, failures by kind, cache hits
per expert), which adds up over every run into the same `out` (`this_run` holds this run's share).
`max_spend` stops the run before a call could pass the cap, which applies to that total
(`max_spend_scope="total"`) or to this run alone (`"run"`): the episode that met the cap is dropped,
rows so far stay, `BenchResult.stopped` says why. So does a miss in the cache's `replay-only` mode. `cache` /
`cache_mode` override the pools' expert caches (`corl_gym.experts.cache`).
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from tqdm import tqdm

from corl_gym.agents.cost_curves import oracle_frontier
from corl_gym.agents.episodes import bench_row, reference_policies, run_episode, run_routing_episode, text_env
from corl_gym.agents.labels import label_choices
from corl_gym.agents.learned_routers import LEARNED
from corl_gym.agents.report import curve_metrics, report_markdown, summarize
from corl_gym.agents.routers import make_router, router_names
from corl_gym.budget import BUDGET_MODES, validate_budget
from corl_gym.cli_args import budget_label
from corl_gym.data import Problem, load_problems
from corl_gym.experts import CacheConfig, Ledger, Pool, load_pool
from corl_gym.run_files import RowWriter, WriterLock, resume_rows
from corl_gym.splits import require_part

KEY_FIELDS = ("pool", "dataset", "seed", "policy", "budget", "problem_id")
# Policies that are not routers of `make_router`: written as `corl-gym list` shows them.
EXTERNAL_POLICIES = ("sb3:<model.zip>", "api:<pool entry>")


@dataclass
class BenchConfig:
    policies: list[str] | None = None  # None: every baseline of the pool
    budgets: list[str | float] = field(default_factory=lambda: list(BUDGET_MODES))  # modes, `mixed` or USD
    datasets: list[str] | None = None  # None: the pool's own dataset, else `synthetic`
    pools: list[str] = field(default_factory=lambda: ["sim-paper"])
    seeds: list[int] = field(default_factory=lambda: [0])
    limit: int | None = 200  # test problems per dataset
    train_limit: int | None = 1000  # training problems for learned routers
    test_fraction: float = 0.5
    max_turns: int | None = None  # turns per text-env episode (default: one call to every expert, then the answer)
    at_cost: float | None = None  # accuracy at this USD per query (default: the pool's low threshold)
    target_accuracy: float | None = None  # cost to reach it (default: the best single expert's accuracy)
    out: str | None = None
    progress: bool = True
    cache: str | None = None  # expert cache file (SQLite) for every expert, overriding the pools'
    cache_mode: str | None = None  # off, read-write, replay-only or record (default read-write with `cache`)
    max_spend: float | None = None  # USD: stop before a call could pass it (ledger.json records the spend)
    max_spend_scope: str = "total"  # the cap counts every run into `out` ("total") or this run alone ("run")
    references: bool = True  # run the curve metrics' reference policies the list lacks (simulated pools only)


@dataclass
class BenchResult:
    rows: list[dict[str, Any]]
    summary: list[dict[str, Any]]
    curves: list[dict[str, Any]]
    markdown: str
    plot: Path | None = None
    stopped: str | None = None  # why the spend cap stopped the run, if it did
    notes: list[str] = field(default_factory=list)  # (pool, dataset) pairs skipped, and why


@dataclass
class _Block:
    """One (pool, seed, dataset) of the run, with its problems and policies."""

    pool_name: str
    seed: int
    pool: Pool
    dataset: str
    train: list[Problem]
    test: list[Problem]
    policies: list[str]
    references: list[str] = field(default_factory=list)  # policies added for the curve metrics' ends
    curve_note: str | None = None  # why curve metrics are missing, when they are

    def __post_init__(self) -> None:
        self.test_ids = {p.id for p in self.test}


def run_bench(config: BenchConfig) -> BenchResult:
    """Run (or resume) the benchmark and write `results.jsonl`, `summary.md`, `pareto.png` under `out`."""
    out = Path(config.out) if config.out else None
    notes: list[str] = []  # (pool, dataset) pairs skipped, and why
    with WriterLock(out / ".lock", f"bench output {out}") if out else contextlib.nullcontext():
        previous = resume_rows(out / "results.jsonl", KEY_FIELDS) if out else []
        ledger = Ledger(config.max_spend, scope=config.max_spend_scope, path=out / "ledger.json" if out else None)
        try:
            result = _run(config, out, previous, ledger, notes)
        finally:
            ledger.close()  # written even when a signal or an error ends the run
    result.stopped, result.notes = ledger.stop_reason, notes
    return result


def _run(config: BenchConfig, out: Path | None, previous: list[dict[str, Any]], ledger: Ledger,
         notes: list[str]) -> BenchResult:
    done = {_key(row) for row in previous}
    blocks: list[_Block] = []
    try:
        blocks.extend(_plan(config, ledger, notes))
        total = sum(len(b.policies) * len(config.budgets) * len(b.test) for b in blocks)
        rows = [row for row in previous if _in_config(row, blocks, config)]
        with tqdm(total=total, desc="bench", unit="ep", disable=not config.progress, file=sys.stderr) as bar:
            bar.update(len(rows))
            with RowWriter(out / "results.jsonl") if out else contextlib.nullcontext() as sink:
                for row in (r for block in blocks for r in _run_block(block, config, done)):
                    if ledger.stopped:
                        break  # this episode met the spend cap: not a result (a resumed run redoes it)
                    rows.append(row)
                    if sink is not None:
                        sink.write(row)
                    bar.update()
    finally:
        for block in blocks:
            block.pool.close()
    return _report(rows, blocks, config, out)  # the oracle frontier's labels call experts too: booked


def _plan(config: BenchConfig, ledger: Ledger | None = None, notes: list[str] | None = None) -> Iterator[_Block]:
    """The run's blocks, checked before any episode runs; pairs a pool cannot cover go to `notes`."""
    notes = [] if notes is None else notes
    for name in ("limit", "train_limit"):
        value = getattr(config, name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
            raise ValueError(f"{name} must be None or an integer >= 0, got {value!r}")
    planned = 0
    for pool_name in config.pools:
        for seed in config.seeds:
            cache = (
                CacheConfig(config.cache, config.cache_mode or "read-write")
                if config.cache or config.cache_mode
                else None
            )
            pool = load_pool(pool_name, seed=seed, ledger=ledger, cache=cache)
            for budget in config.budgets:
                validate_budget(budget, pool.budgets)
            for dataset in config.datasets or [pool.dataset or "synthetic"]:
                problems = load_problems(dataset)
                try:
                    pool.check_covers(problems)
                except ValueError as exc:
                    if seed == config.seeds[0]:
                        notes.append(f"skipping pool {pool_name} x dataset {dataset}: {exc}")
                    continue
                train, test = _splits(dataset, problems, config)
                policies = config.policies or router_names(pool.expert_names())
                for name in policies:  # unknown names and missing models fail now, before any episode runs
                    if name.startswith("sb3:") and not Path(name.split(":", 1)[1]).exists():
                        raise FileNotFoundError(f"no SB3 model at {name.split(':', 1)[1]}")
                    if not name.startswith(("sb3:", "api:")):
                        make_router(name)
                references, curve_note = (reference_policies(policies, pool, pool_name) if config.references
                                          else ([], None))
                planned += 1
                yield _Block(pool_name, seed, pool, dataset, train, test, [*policies, *references], references,
                             curve_note)
    if not planned:
        raise ValueError("nothing to run: " + "; ".join(notes))


def _splits(dataset: str, problems: list[Problem], config: BenchConfig) -> tuple[list[Problem], list[Problem]]:
    """The (train, test) parts; an error naming the sizes when there is nothing to test or to fit on."""
    fitted = any(p in LEARNED for p in config.policies or ["best-fixed"])
    train, test = require_part(dataset, problems, config.test_fraction, "test", *(["train"] if fitted else []))
    return train[: config.train_limit], test[: config.limit]


def _run_block(block: _Block, config: BenchConfig, done: set[tuple]) -> Iterator[dict[str, Any]]:
    base = {"pool": block.pool_name, "dataset": block.dataset, "seed": block.seed}
    for policy in block.policies:
        todo = [
            (budget, index, problem)
            for budget in config.budgets
            for index, problem in enumerate(block.test)
            if _key({**base, "policy": policy, "budget": budget_label(budget), "problem_id": problem.id}) not in done
        ]
        if not todo:
            continue
        if policy.startswith("sb3:"):
            from corl_gym.agents.sb3 import load_policy, routing_env

            agent = load_policy(policy.split(":", 1)[1])
            env = routing_env(agent.env_id, agent.features, pool=block.pool, problems=block.test)
            play = partial(run_routing_episode, env, agent)
        else:
            router = _text_policy(policy, block)
            if hasattr(router, "fit"):
                router.fit(block.pool, block.train)
            play = partial(run_episode, text_env(block.pool, block.test, config.max_turns), router)
        for budget, index, _ in todo:
            yield bench_row(base, policy, budget, block.seed, index, play)


def _text_policy(policy: str, block: _Block) -> Any:
    """A policy that acts in `CORL-Math-v0`: a baseline router, or `api:<entry>` (a prompted API model)."""
    if policy.startswith("api:"):
        from corl_gym.agents.api_controller import make_chat_controller

        return make_chat_controller(block.pool, policy.split(":", 1)[1])
    return make_router(policy, seed=block.seed)


def _report(rows: list[dict[str, Any]], blocks: list[_Block], config: BenchConfig, out: Path | None) -> BenchResult:
    summary = summarize(rows)
    budgets = {(b.pool_name, b.dataset): b.pool.budgets for b in blocks}
    # The frontier calls every expert on every test problem: only where the run already peeks (`oracle`),
    # so a live pool is never billed for a plot nobody asked for.
    frontiers = {(b.pool_name, b.dataset): _frontier(b) for b in blocks
                 if b.seed == blocks[0].seed and "oracle" in b.policies}
    curves = curve_metrics(summary, budgets, config.at_cost, config.target_accuracy)
    markdown = report_markdown(summary, curves,
                               references={(b.pool_name, b.dataset): b.references for b in blocks},
                               notes={(b.pool_name, b.dataset): b.curve_note for b in blocks if b.curve_note},
                               simulated={b.pool_name for b in blocks if b.pool.simulated})
    plot = None
    if out is not None:
        (out / "summary.md").write_text(markdown + "\n", encoding="utf-8")
        from corl_gym.benchmarks.plot import pareto_plot

        # nothing to draw: stopped at once
        plot = pareto_plot(summary, out / "pareto.png", frontiers) if summary else None
    return BenchResult(rows, summary, curves, markdown, plot)


def _frontier(block: _Block) -> list[tuple[float, float]]:
    """The oracle frontier of a block's test problems (labels cost one call per choice and problem)."""
    labels = label_choices(block.pool, block.test)
    if block.pool.ledger is not None and block.pool.ledger.stopped:
        return []  # labels met the spend cap: refused calls would draw a false frontier
    return oracle_frontier(labels.correct, labels.cost)


def _key(row: dict[str, Any]) -> tuple:
    return tuple(row[k] for k in KEY_FIELDS)


def _in_config(row: dict[str, Any], blocks: list[_Block], config: BenchConfig) -> bool:
    for b in blocks:
        if (row["pool"], row["dataset"], row["seed"]) == (b.pool_name, b.dataset, b.seed):
            return (
                row["policy"] in b.policies
                and row["budget"] in map(budget_label, config.budgets)
                and row["problem_id"] in b.test_ids
            )
    return False

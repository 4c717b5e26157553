"""The routing benchmark: policies x budgets on one dataset and pool -> episode rows and a summary.

Every (policy, budget, problem) is one episode of `CORL-Math-v0` with the problem pinned through
`reset(options=...)` and the env seeded from `seed`, so a run is reproducible row for row with simulated
or replayed experts. Rows go to `results.jsonl` as they are produced; `summary.md` is written at the end.
"""

from __future__ import annotations

import contextlib
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from tqdm import tqdm

from corl_gym.agents.routers import Router, make_router, router_names
from corl_gym.benchmarks.report import summarize, summary_markdown
from corl_gym.budget import BUDGET_MODES
from corl_gym.data import load_problems
from corl_gym.envs.math_env import CORLMathEnv
from corl_gym.experts import load_pool


@dataclass
class BenchConfig:
    policies: list[str] | None = None  # None: every baseline of the pool
    budgets: list[str] = field(default_factory=lambda: list(BUDGET_MODES))
    dataset: str | None = None  # None: the pool's own dataset, else `synthetic`
    pool: str = "sim-paper"
    limit: int | None = 200
    seed: int = 0
    max_turns: int = 4
    out: str | None = None
    progress: bool = True


def run_bench(config: BenchConfig) -> tuple[list[dict[str, Any]], str]:
    """Run the benchmark; return the rows and the Markdown summary (also written under `config.out`)."""
    pool = load_pool(config.pool, seed=config.seed)
    try:
        dataset = config.dataset or pool.dataset or "synthetic"
        problems = load_problems(dataset, limit=config.limit)
        policies = config.policies or router_names(pool.expert_names())
        for budget in config.budgets:
            if budget not in pool.budgets:
                raise ValueError(f"unknown budget {budget!r}: this pool has {', '.join(pool.budgets)}")
        routers = {name: make_router(name, seed=config.seed) for name in policies}
        env = CORLMathEnv(pool=pool, problems=problems, max_turns=config.max_turns)
        out = Path(config.out) if config.out else None
        if out is not None:
            out.mkdir(parents=True, exist_ok=True)
        rows = []
        with open(out / "results.jsonl", "w", encoding="utf-8") if out else _NoFile() as results:
            for row in _episodes(env, routers, config, dataset, problems):
                rows.append(row)
                results.write(json.dumps(row) + "\n")
    finally:
        pool.close()
    summary = summary_markdown(summarize(rows), title=f"{dataset} | pool {config.pool} | seed {config.seed}")
    if out is not None:
        (out / "summary.md").write_text(summary + "\n", encoding="utf-8")
    return rows, summary


def _episodes(env: CORLMathEnv, routers: dict[str, Router], config: BenchConfig, dataset: str, problems) -> Iterator[dict]:
    total = len(routers) * len(config.budgets) * len(problems)
    with tqdm(total=total, desc="bench", unit="ep", disable=not config.progress, file=sys.stderr) as bar:
        for policy, router in routers.items():
            for budget in config.budgets:
                for index, problem in enumerate(problems):
                    row = run_episode(env, router, config.seed + index, {"problem_index": index, "budget": budget})
                    yield {"policy": policy, "budget": budget, "dataset": dataset, "pool": config.pool, **row}
                    bar.update()


def run_episode(env: CORLMathEnv, router: Router, seed: int, options: dict[str, Any]) -> dict[str, Any]:
    """One episode of `router` in `env`; returns the row's episode fields."""
    observation, info = env.reset(seed=seed, options=options)
    router.reset(env, info)
    reward, done, action_errors = 0.0, False, 0
    while not done:
        observation, reward, terminated, truncated, info = env.step(router.act(observation, info))
        action_errors += info["action_error"] is not None
        done = terminated or truncated
    return {
        "problem_id": info["problem_id"],
        "seed": seed,
        "correct": info["correct"],
        "verdict": info["verdict"],
        "reward": float(reward),
        "cost_usd": info["cost_usd"],
        "threshold_usd": info["threshold_usd"],
        "over_budget": info["over_budget"],
        "calls": info["calls"],
        "turns": info["turn"],
        "action_errors": action_errors,
    }


class _NoFile(contextlib.nullcontext):
    """Stands in for `results.jsonl` when no `--out` is given."""

    def __enter__(self):
        return self

    def write(self, text: str) -> None:
        pass

"""Env speed: steps per second of CORL-Math-v0, CORL-Routing-v0 and CORL-Routing-v1 and the env's own overhead per step.

    python -m corl_gym.benchmarks.env_speed [--steps 20000] [--bench-limit 500]

The overhead excludes the time spent in expert calls and in the answer checker (both timed by wrapping
them), so it is what the env itself adds: parsing, prompts, bookkeeping, info dicts. Actions are uniform
random, resets included (a reset costs about two steps), so an env whose random episodes are shorter
(v1: most of its actions submit) pays more resets a step; the line says how many. The named
baseline, measured in the same run, is Gymnasium's `CartPole-v1` step (a pure-Python physics step),
so the ratio is stable on a noisy machine. Finally the default routing benchmark (every baseline x 3
budgets) is timed on `--bench-limit` test problems.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import gymnasium as gym
import numpy as np

import corl_gym  # noqa: F401  (registers the envs)
from corl_gym import verify
from corl_gym.benchmarks.bench import BenchConfig, run_bench


class _Stopwatch:
    """Sums the time spent inside wrapped functions; nested calls (a check inside an equivalence test)
    count once."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.depth = 0

    def wrap(self, function: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            self.depth += 1
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.depth -= 1
                if self.depth == 0:
                    self.seconds += time.perf_counter() - start

        return timed


@contextmanager
def _timed_dependencies(env: Any, watch: _Stopwatch) -> Iterator[None]:
    """Time expert calls and answer checks while the env runs, then restore them."""
    experts = [env.pool.controller, *env.pool.experts.values()]
    originals = [(e, e.call) for e in experts]
    check, equivalent = verify.check, verify.is_equivalent
    for expert in experts:
        expert.call = watch.wrap(expert.call)
    verify.check, verify.is_equivalent = watch.wrap(check), watch.wrap(equivalent)
    try:
        yield
    finally:
        verify.check, verify.is_equivalent = check, equivalent
        for expert, call in originals:
            expert.call = call


def _text_actions(env: Any, rng: np.random.Generator) -> Callable[[], str]:
    names = env.unwrapped.expert_names

    def action() -> str:
        choice = rng.integers(4)
        if choice == 0:
            return f'<call expert="{names[rng.integers(len(names))]}">{env.unwrapped.problem.problem}</call>'
        if choice == 1:
            return f"<think>short</think><answer>\\boxed{{{env.unwrapped.problem.answer}}}</answer>"
        if choice == 2:
            return "<answer>\\boxed{7}</answer>"
        return "no tag at all"

    return action


def measure_env(env_id: str, steps: int, seed: int = 0) -> dict[str, float]:
    env = gym.make(env_id, budget="mixed")
    rng = np.random.default_rng(seed)
    act = _text_actions(env, rng) if env_id == "CORL-Math-v0" else (lambda: int(rng.integers(env.action_space.n)))
    watch = _Stopwatch()
    env.reset(seed=seed)
    resets = 0
    with _timed_dependencies(env.unwrapped, watch):
        start = time.perf_counter()
        for _ in range(steps):
            _, _, terminated, truncated, _ = env.step(act())
            if terminated or truncated:
                env.reset()
                resets += 1
        total = time.perf_counter() - start
    return {"steps_per_s": steps / total, "overhead_us": (total - watch.seconds) / steps * 1e6,
            "deps_share": watch.seconds / total, "resets_per_step": resets / steps}


def measure_cartpole(steps: int, seed: int = 0) -> float:
    env = gym.make("CartPole-v1")
    env.reset(seed=seed)
    start = time.perf_counter()
    for i in range(steps):
        _, _, terminated, truncated, _ = env.step(i % 2)
        if terminated or truncated:
            env.reset()
    return (time.perf_counter() - start) / steps * 1e6


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--bench-limit", type=int, default=500)
    args = parser.parse_args(argv)

    cartpole_us = measure_cartpole(args.steps)
    print(f"baseline CartPole-v1 step: {cartpole_us:.1f} us/step")
    for env_id in ("CORL-Math-v0", "CORL-Routing-v0", "CORL-Routing-v1"):
        m = measure_env(env_id, args.steps)
        print(
            f"{env_id}: {m['steps_per_s']:,.0f} steps/s; env overhead {m['overhead_us']:.1f} us/step "
            f"({m['overhead_us'] / cartpole_us:.1f}x CartPole); experts + checker {m['deps_share']:.0%} of the time; "
            f"{m['resets_per_step']:.2f} resets a step (uniform random actions)"
        )
    start = time.perf_counter()
    result = run_bench(BenchConfig(limit=args.bench_limit, progress=False))
    seconds = time.perf_counter() - start
    policies = len({r["policy"] for r in result.rows})
    print(
        f"corl-gym bench: {policies} policies x 3 budgets x {args.bench_limit} problems = {len(result.rows)} episodes "
        f"in {seconds:.1f} s ({len(result.rows) / seconds:,.0f} episodes/s)"
    )


if __name__ == "__main__":
    main()

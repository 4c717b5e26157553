"""Benchmark corl_gym.verify against math-verify: latency, fast-path share, suite agreement, deadlines.

    CORL_DATA_DIR=../shared/data python benchmarks/verify_bench.py [--limit N] [--deadline S]

Pairs: every MATH500 gold and the GSM8K integer golds of the LLMRouter replay set, each with a
correct prediction (the gold as written), a reformatted correct one (`a/b` for `\\frac{a}{b}`,
thousands separators, `n.0`) and a perturbed one (the last number changed), deduplicated and
shuffled. Both checkers get the same strings (gold in `$...$`, prediction in `\\boxed{}`, as they
come from a model); math-verify runs `parse` + `verify` with its default settings. Our pool is warmed
before timing, since the env keeps it alive for a whole run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import statistics
import string
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from corl_gym.verify import Verdict, check, check_many, fast_path, warm_up

SUITE = Path(__file__).resolve().parent / "data" / "verify_suite.jsonl"  # package data: in every install


def _golds(data_dir: Path) -> list[str]:
    math500 = [json.loads(line)["answer"] for line in (data_dir / "math500.jsonl").read_text().splitlines()]
    replay = data_dir / "replay" / "llmrouter_math_gsm8k_problems.jsonl"
    rows = [json.loads(line) for line in replay.read_text().splitlines()] if replay.is_file() else []
    return math500 + [r["answer"] for r in rows if r.get("task") == "gsm8k"]


def _reformat(gold: str) -> str:
    m = re.fullmatch(r"(-?)\\[dt]?frac\{(\d+)\}\{(\d+)\}", gold.strip())
    if m:
        return f"{m.group(1)}{m.group(2)}/{m.group(3)}"
    if re.fullmatch(r"-?\d+", gold.strip()):
        n = int(gold)
        return f"{n:,}" if abs(n) >= 1000 else f"{n}.0"
    return gold.replace("\\frac", "\\dfrac") if "\\frac" in gold else f"{gold} "


def _perturb(gold: str) -> str:
    numbers = list(re.finditer(r"\d+", gold))
    if not numbers:
        return f"-({gold})"
    last = numbers[-1]
    return gold[: last.start()] + str(int(last.group()) + 1) + gold[last.end():]


def bench_pairs(data_dir: Path, limit: int | None) -> list[tuple[str, str]]:
    pairs, seen = [], set()
    for gold in _golds(data_dir)[:limit]:
        for pred in (gold, _reformat(gold), _perturb(gold)):
            pair = (f"\\boxed{{{pred}}}", f"${gold}$")
            if pair not in seen:
                seen.add(pair)
                pairs.append(pair)
    random.Random(0).shuffle(pairs)
    return pairs


def _mv_equal(pred: str, gold: str) -> bool:
    from math_verify import parse, verify

    return bool(verify(parse(gold), parse(pred)))


def _time_each(fn, pairs: list[tuple[str, str]]) -> tuple[list[float], list]:
    times, results = [], []
    for pred, gold in pairs:
        start = time.perf_counter()
        results.append(fn(pred, gold))
        times.append(time.perf_counter() - start)
    return times, results


def _stats(times: list[float]) -> dict[str, float]:
    ordered = sorted(times)

    def pick(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000

    return {"median": statistics.median(ordered) * 1000, "p90": pick(0.90), "p99": pick(0.99),
            "max": ordered[-1] * 1000}


def latency_section(pairs: list[tuple[str, str]]) -> None:
    ours_t, ours = _time_each(check, pairs)
    mv_t, mv = _time_each(_mv_equal, pairs)
    fast = sum(fast_path(p, g) is not None for p, g in pairs)
    agree = sum((v is Verdict.CORRECT) == m for v, m in zip(ours, mv))
    s_ours, s_mv = _stats(ours_t), _stats(mv_t)
    print(f"## Latency on {len(pairs)} unique pairs (ms per pair)\n")
    print("| checker | median | p90 | p99 | max |\n| --- | ---: | ---: | ---: | ---: |")
    for name, s in (("corl_gym.verify.check", s_ours), ("math-verify parse+verify", s_mv)):
        print(f"| {name} | {s['median']:.3f} | {s['p90']:.3f} | {s['p99']:.3f} | {s['max']:.3f} |")
    ratios = " | ".join(f"{s_ours[k] / s_mv[k]:.3f}" for k in ("median", "p90", "p99", "max"))
    print(f"| ratio ours / math-verify | {ratios} |\n")
    print(f"fast-path share: {fast}/{len(pairs)} = {fast / len(pairs):.1%} decided without sympy")
    print(f"same verdict as math-verify on these pairs: {agree}/{len(pairs)}")
    start = time.perf_counter()
    check_many(pairs)
    elapsed = time.perf_counter() - start
    print(f"check_many on the same pairs: {elapsed:.2f} s ({len(pairs) / elapsed:.0f} pairs/s)\n")


def suite_section() -> None:
    rows = [json.loads(line) for line in SUITE.read_text().splitlines()]
    ours = check_many([(r["pred"], r["gold"]) for r in rows])
    mv = [_mv_equal(f"${r['pred']}$", f"${r['gold']}$") for r in rows]
    print(f"## Agreement with the labelled suite ({len(rows)} pairs, {sum(r['label'] for r in rows)} equivalent)\n")
    print("| checker | right | accuracy | wrongly called equivalent | wrongly rejected |\n"
          "| --- | ---: | ---: | ---: | ---: |")
    for name, said in (("corl_gym.verify", [v is Verdict.CORRECT for v in ours]), ("math-verify", mv)):
        right = sum(s == r["label"] for s, r in zip(said, rows))
        false_pos = sum(s and not r["label"] for s, r in zip(said, rows))
        false_neg = sum(r["label"] and not s for s, r in zip(said, rows))
        print(f"| {name} | {right}/{len(rows)} | {right / len(rows):.2%} | {false_pos} | {false_neg} |")
    print()


def _pathological() -> dict[str, tuple[str, str]]:
    rng = random.Random(0)
    return {
        "power tower 2^{2^{2^{2^{2}}}}": ("2^{2^{2^{2^{2}}}}", "5"),
        "10^{10^{10}}": ("10^{10^{10}}", "5"),
        "(10^6)!": ("(10^6)!", "5"),
        "24!^2 vs 24": ("24", "24!^2"),
        "radicals nested 50 deep": ("\\sqrt{" * 50 + "2" + "}" * 50, "5"),
        "100k-character garbage": ("".join(rng.choice(string.printable) for _ in range(100_000)), "5"),
        "10k nested braces": ("{" * 10_000 + "1" + "}" * 10_000, "5"),
        "unbalanced LaTeX": ("\\frac{1}{2 + \\left( 3", "5"),
        "unclosed subscript E=TCmO_{(T": ("E=TCmO_{(T", "5"),
        "unclosed matrix": ("\\begin{pmatrix}1&2", "5"),
        "sympy blow-up (x+1)^{5000} vs (x+2)^{5000}": ("(x+1)^{5000}", "(x+2)^{5000}"),
    }


def _timed_check(pred: str, gold: str, deadline: float) -> tuple[Verdict, float]:
    start = time.perf_counter()
    verdict = check(pred, gold, timeout=deadline)
    return verdict, time.perf_counter() - start


def _in_thread(fn, *args):
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(fn, *args).result()


def pathological_section(deadline: float) -> None:
    async def in_asyncio(pred, gold):
        return _timed_check(pred, gold, deadline)

    contexts = {
        "main thread": lambda p, g: _timed_check(p, g, deadline),
        "worker thread": lambda p, g: _in_thread(_timed_check, p, g, deadline),
        "asyncio": lambda p, g: asyncio.run(in_asyncio(p, g)),
    }
    print(f"## Pathological inputs (deadline {deadline} s; target: decided within {1.1 * deadline:.1f} s)\n")
    print("| input | " + " | ".join(contexts) + " |\n| --- |" + " --- |" * len(contexts))
    worst = 0.0
    for name, (pred, gold) in _pathological().items():
        cells = []
        for run in contexts.values():
            verdict, elapsed = run(pred, gold)
            worst = max(worst, elapsed)
            cells.append(f"{verdict.name} {elapsed:.3f} s")
        print(f"| {name} | " + " | ".join(cells) + " |")
    print(f"\nslowest decision: {worst:.3f} s = {worst / deadline:.3f} x deadline\n")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=None, help="use only the first N golds")
    parser.add_argument("--deadline", type=float, default=2.0, help="deadline for the pathological table")
    args = parser.parse_args(argv)
    data_dir = Path(os.environ.get("CORL_DATA_DIR", "../shared/data"))
    if not (data_dir / "math500.jsonl").is_file():
        sys.exit(f"no math500.jsonl in {data_dir}: set CORL_DATA_DIR to the data folder")
    warm_up(2)
    check("\\sqrt{8}", "2\\sqrt{2}")  # wait until a worker is ready
    latency_section(bench_pairs(data_dir, args.limit))
    suite_section()
    pathological_section(args.deadline)


if __name__ == "__main__":
    main()

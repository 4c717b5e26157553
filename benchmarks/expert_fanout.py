"""Expert fan-out and fault benchmarks against the loopback chat-completions server.

    python -m corl_gym.benchmarks.expert_fanout [--n 512] [--latency 0.2] [--concurrency 64]
    python -m corl_gym.benchmarks.expert_fanout --fault-episodes 500 [--fault-rate 0.2]

Fan-out: N calls to an `openai` expert at a fixed server latency, through the whole production path
(`Pool.acall_many` -> `ManagedExpert` (ledger) -> `OpenAIExpert` (concurrency cap, retries) ->
`AsyncOpenAI`), at concurrency C. Printed: the wall time against the ideal ceil(N/C) x latency; the same
N calls as the pattern peers use, a `ThreadPoolExecutor(10)` of synchronous `openai.OpenAI` calls, in the
same run; the same N calls through a bare `AsyncOpenAI` with one semaphore (no retries, ledger, limits),
whose difference to ours is our layer's overhead per call; and the client process's CPU time per call.
With C = 64 the async ideal is ceil(512/64) x 0.2 s = 1.6 s and the thread pool's is ceil(512/10) x
0.2 s = 10.4 s, so the ratio at C = 64 cannot pass 6.5; the run at C = N shows the fan-out unbounded.
The server runs in a child process so its work does not share the client's interpreter lock.

Fault run: `--fault-episodes E` runs E episodes of `CORL-Math-v0` (a vector env of 50) whose experts sit
behind a server that fails `--fault-rate` of requests in mixed ways (429 with Retry-After, 500, 503,
truncated JSON, connection reset, a stalled body, a wrong usage block). A scripted policy calls two
experts, then answers. It checks and prints: every episode recorded, every failed reply visible in
`info["expert_error"]` (the count seen in infos equals the ledger's failures), no call over the attempt
bound (the ledger's `max_attempts`, and its request count against calls x bound). `requests` is the
client's count of attempts (the ledger's); `server_requests` is what the server logged, read after the
server has stopped, and can only be lower: an attempt whose deadline (`timeout`) passes before its
request is written never reaches the server. On a loaded machine that happens to ordinary requests too,
so the server's count is a bound (`server_requests <= requests`), never an equality.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import resource
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from corl_gym.data import Problem
from corl_gym.experts import Ledger, load_pool
from corl_gym.experts.fake_server import FAULT_KINDS, ServerProcess

PROBLEM = Problem(id="fanout-0", problem="What is 1+1?", answer="2", level=1)
POOL_YAML = """name: loopback
budgets: {{low: 0.001, medium: 0.01, high: 1.0}}
controller: {{name: self, backend: sim, model: self, price_in: 0, price_out: 0, accuracy: {{1: 0.5}}}}
experts:
{experts}
"""
EXPERT_YAML = ("  - {{name: {name}, backend: openai, model: {name}, price_in: 1.0, price_out: 4.0, base_url: '{url}',"
               " api_key_env: null, max_tokens: 64, concurrency: {concurrency}, timeout: {timeout},"
               " max_retries: {retries}, backoff_base_s: 0.02, backoff_max_s: 0.2}}")


def write_pool(folder: Path, url: str, names: list[str], *, concurrency: int = 64, timeout: float = 30.0,
               retries: int = 3) -> Path:
    """A pool file of `openai` experts at `url` (no key) and a simulated controller."""
    entries = [
        EXPERT_YAML.format(name=n, url=url, concurrency=concurrency, timeout=timeout, retries=retries) for n in names
    ]
    path = folder / "loopback.yaml"
    path.write_text(POOL_YAML.format(experts="\n".join(entries)), encoding="utf-8")
    return path


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# ------------------------------------------------------------------------------------------ fan-out
def ours(url: str, n: int, concurrency: int, folder: Path) -> tuple[float, float, dict[str, Any]]:
    ledger = Ledger()
    pool = load_pool(str(write_pool(folder, url, ["fast"], concurrency=concurrency)), ledger=ledger)
    calls = [("fast", f"q{i}", PROBLEM) for i in range(n)]

    async def run() -> tuple[float, float]:
        await pool.acall_many(calls[: min(concurrency, n)])  # warm: client, connections, imports
        cpu, start = _cpu_s(), time.perf_counter()
        replies = await pool.acall_many(calls)
        wall = time.perf_counter() - start
        assert all(r.ok for r in replies), [r.error for r in replies if not r.ok][:3]
        return wall, _cpu_s() - cpu

    wall, cpu = asyncio.run(run())
    pool.close()
    return wall, cpu, ledger.to_dict()


def bare(url: str, n: int, concurrency: int) -> float:
    from openai import AsyncOpenAI

    async def run() -> float:
        client = AsyncOpenAI(api_key="EMPTY", base_url=url, max_retries=0)
        slots = asyncio.Semaphore(concurrency)

        async def one(i: int) -> Any:
            async with slots:
                return await client.chat.completions.create(
                    model="fast", messages=[{"role": "user", "content": f"q{i}"}], max_tokens=64, temperature=0.0)

        await asyncio.gather(*(one(i) for i in range(min(concurrency, n))))
        start = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(n)))
        wall = time.perf_counter() - start
        await client.close()
        return wall

    return asyncio.run(run())


def thread_pool(url: str, n: int, workers: int = 10) -> float:
    from openai import OpenAI

    client = OpenAI(api_key="EMPTY", base_url=url, max_retries=0)

    def one(i: int) -> Any:
        return client.chat.completions.create(
            model="fast", messages=[{"role": "user", "content": f"q{i}"}], max_tokens=64, temperature=0.0)

    with ThreadPoolExecutor(workers) as executor:
        list(executor.map(one, range(workers)))  # warm
        start = time.perf_counter()
        list(executor.map(one, range(n)))
        return time.perf_counter() - start


def layer_overhead(n: int = 20000, concurrency: int = 64) -> tuple[float, float]:
    """Microseconds a call spends in our layer (pool, ledger, expert, retry loop, deadline) with the
    transport stubbed out, and in the bare semaphore + stub alone: (ours, bare)."""
    import types

    from corl_gym.experts import ExpertSpec, Pool
    from corl_gym.experts.managed import ManagedExpert
    from corl_gym.experts.openai_backend import OpenAIExpert

    message = types.SimpleNamespace(content="It is \\boxed{2}.")
    response = types.SimpleNamespace(choices=[types.SimpleNamespace(message=message)],
                                     usage=types.SimpleNamespace(prompt_tokens=10, completion_tokens=5))

    async def create(**_: Any) -> Any:
        await asyncio.sleep(0)  # one trip through the loop, as a real response takes
        return response

    stub = types.SimpleNamespace(chat=types.SimpleNamespace(completions=types.SimpleNamespace(create=create)))
    spec = ExpertSpec(name="e", backend="openai", model="m", price_in=1, price_out=1,
                      options={"api_key_env": None, "concurrency": concurrency})
    expert = OpenAIExpert(spec)
    pool = Pool(name="t", controller=expert, experts={"e": ManagedExpert(expert, ledger=Ledger())}, budgets={})

    async def ours() -> float:
        slots = asyncio.Semaphore(concurrency)
        expert._loop_state = lambda: (stub, slots)
        start = time.perf_counter()
        await pool.acall_many([("e", f"q{i}", PROBLEM) for i in range(n)])
        return time.perf_counter() - start

    async def bare() -> float:
        slots = asyncio.Semaphore(concurrency)

        async def one() -> Any:
            async with slots:
                return await create(model="m", messages=[])

        start = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(n)))
        return time.perf_counter() - start

    best_ours = min(asyncio.run(ours()) for _ in range(3))
    best_bare = min(asyncio.run(bare()) for _ in range(3))
    return best_ours / n * 1e6, best_bare / n * 1e6


def fanout(n: int, latency: float, concurrency: int, layer_calls: int = 20000) -> None:
    ideal = math.ceil(n / concurrency) * latency
    with (
        tempfile.TemporaryDirectory() as tmp,
        ServerProcess(latency_s=latency, max_requests=20 * n, lifetime_s=600) as server,
    ):
        folder = Path(tmp)
        wall, cpu, ledger = ours(server.base_url, n, concurrency, folder)
        bare_wall = bare(server.base_url, n, concurrency)
        wide_wall, _, _ = ours(server.base_url, n, n, folder)
        threads = thread_pool(server.base_url, n)
    wide_ideal = latency
    layer, stub_only = layer_overhead(layer_calls)
    print(f"expert fan-out: N={n} calls, server latency {latency * 1000:.0f} ms, loopback server in a child process")
    print(f"  ours, concurrency {concurrency:4d}:    {wall:7.3f} s   ideal ceil(N/C) x latency = {ideal:.3f} s   "
          f"ratio {wall / ideal:.3f}")
    print(f"  bare AsyncOpenAI, same cap:  {bare_wall:7.3f} s   ratio {bare_wall / ideal:.3f}")
    print(f"  ours, concurrency {n:4d}:    {wide_wall:7.3f} s   ideal {wide_ideal:.3f} s   "
          f"ratio {wide_wall / wide_ideal:.3f}")
    print(f"  ThreadPoolExecutor(10), sync: {threads:7.3f} s   ideal {math.ceil(n / 10) * latency:.3f} s")
    print(f"  speed-up vs thread pool: {threads / wall:.1f}x at C={concurrency} "
          f"(at most {math.ceil(n / 10) / math.ceil(n / concurrency):.1f}x possible), "
          f"{threads / wide_wall:.1f}x at C={n}")
    print(f"  per-call overhead over the ideal (wall - ideal) / N: {(wall - ideal) / n * 1e6:.0f} us")
    print(f"  per-call overhead of our layer over bare AsyncOpenAI (wall - bare) / N: "
          f"{(wall - bare_wall) / n * 1e6:.0f} us")
    print(f"  client CPU per call (whole stack: openai, httpx, ours): {cpu / n * 1e6:.0f} us")
    print(f"  our layer alone, transport stubbed ({layer_calls} calls): {layer - stub_only:.1f} us per call "
          f"({layer:.1f} us with the stub vs {stub_only:.1f} us for a bare semaphore + stub)")
    print(f"  ledger: {ledger['calls']} calls, {ledger['requests']} requests, {ledger['retries']} retries, "
          f"failures {ledger['failures']}")


# ---------------------------------------------------------------------------------------- fault run
def fault_run(episodes: int, fault_rate: float = 0.2, num_envs: int = 50, max_retries: int = 2,
              latency: float = 0.01, seed: int = 0, quiet: bool = False) -> dict[str, Any]:
    """Run `episodes` episodes against a faulty server; returns the summary (see the module docstring)."""
    from corl_gym.envs.vector import CORLMathVectorEnv
    from corl_gym.experts.fake_server import ChatServer

    names = ["alpha", "beta"]
    server = ChatServer(latency_s=latency, fault_rate=fault_rate, fault_mix=FAULT_KINDS, seed=seed, retry_after_s=0.05,
                        stall_s=2.0, max_requests=episodes * 2 * (max_retries + 1) + 100, lifetime_s=600)
    with server, tempfile.TemporaryDirectory() as tmp:
        ledger = Ledger()
        pool = load_pool(str(write_pool(Path(tmp), server.base_url, names, timeout=1.0, retries=max_retries)),
                         ledger=ledger)
        env = CORLMathVectorEnv(num_envs, pool=pool, budget="high", max_turns=4)
        rows, seen_failures, kinds_seen = _drive(env, episodes, names, seed)
        env.close()
    server_requests, faults = len(server.requests), dict(server.faults_served)  # stopped: nothing more comes
    book = ledger.to_dict()
    bound = max_retries + 1
    requests = book["requests"]
    summary = {
        "episodes_recorded": len(rows), "episodes_asked": episodes, "calls": book["calls"], "requests": requests,
        "server_requests": server_requests,
        "retries": book["retries"], "attempt_bound": bound, "max_attempts": book["max_attempts"],
        "faults_injected": faults, "failures_by_kind": book["failures"], "failures_in_info": seen_failures,
        "usage_estimated": sum(e["usage_estimated"] for e in book["experts"].values()),
        "spend_usd": book["spend_usd"], "error_kinds_in_info": kinds_seen,
    }
    summary["ok"] = (len(rows) >= episodes and book["max_attempts"] <= bound and requests <= book["calls"] * bound
                     and server_requests <= requests and seen_failures == sum(book["failures"].values()))
    if not quiet:
        for key, value in summary.items():
            print(f"  {key}: {value}")
    return summary


def _drive(env: Any, episodes: int, names: list[str], seed: int) -> tuple[list[dict[str, Any]], int, dict[str, int]]:
    """Scripted policy: turn 0 asks `alpha`, turn 1 asks `beta`, turn 2 answers with the last boxed value."""
    observations, info = env.reset(seed=seed)
    rows: list[dict[str, Any]] = []
    failures, kinds = 0, {}
    while len(rows) < episodes:
        actions = []
        for i in range(env.num_envs):
            turn = int(info["turn"][i])
            if turn < len(names):
                actions.append(f'<call expert="{names[turn]}">Problem {i}: what is the answer? turn {turn}</call>')
            else:
                actions.append("<answer>\\boxed{2}</answer>")
        observations, rewards, terminated, truncated, info = env.step(actions)
        for i in range(env.num_envs):
            error = info["expert_error"][i] if info.get("_expert_error", np.ones(env.num_envs, bool))[i] else None
            if error:
                failures += 1
                kind = error.split(":", 1)[0]
                kinds[kind] = kinds.get(kind, 0) + 1
            if terminated[i] or truncated[i]:
                rows.append({"problem_id": info["problem_id"][i], "reward": float(rewards[i]),
                             "cost": float(info["cost_usd"][i])})
    return rows, failures, kinds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=512, help="calls in the fan-out")
    parser.add_argument("--latency", type=float, default=0.2, help="server latency, seconds")
    parser.add_argument("--concurrency", type=int, default=64, help="calls in flight")
    parser.add_argument("--fault-episodes", type=int, default=0,
                        help="run the fault run with this many episodes instead")
    parser.add_argument("--fault-rate", type=float, default=0.2, help="share of requests the server fails")
    args = parser.parse_args(argv)
    if args.fault_episodes:
        print(f"fault run: {args.fault_episodes} episodes, {args.fault_rate:.0%} of requests failing in mixed ways")
        return 0 if fault_run(args.fault_episodes, args.fault_rate)["ok"] else 1
    fanout(args.n, args.latency, args.concurrency)
    return 0


if __name__ == "__main__":
    sys.exit(main())

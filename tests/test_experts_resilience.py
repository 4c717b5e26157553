"""The `openai` backend under faults, against the loopback chat-completions server (127.0.0.1, ephemeral
port, bounded requests, stops by itself): retries with backoff and Retry-After, the attempt bound, the
per-call timeout, concurrency caps, rpm/tpm limits, malformed usage, and no API key anywhere."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest

from corl_gym.data import Problem
from corl_gym.experts import ExpertSpec, Ledger, load_pool, resilience
from corl_gym.experts.fake_server import ChatServer
from corl_gym.experts.openai_backend import OpenAIExpert

SECRET = "sk-live-0123456789abcdefSECRETKEY"
PROBLEM = Problem(id="t-0", problem="What is 1+1?", answer="2", level=1)


@pytest.fixture()
def server():
    with ChatServer(retry_after_s=0.05, stall_s=30.0, max_requests=200, lifetime_s=60) as running:
        yield running


def _expert(server, monkeypatch, **options) -> OpenAIExpert:
    monkeypatch.setenv("CORL_TEST_KEY", SECRET)
    base = {"base_url": server.base_url, "api_key_env": "CORL_TEST_KEY", "timeout": 30, "max_retries": 2,
            "backoff_base_s": 0.01, "backoff_max_s": 0.05}
    return OpenAIExpert(ExpertSpec(name="e", backend="openai", model="m", price_in=2.0, price_out=8.0,
                                   options={**base, **options}))


def _timeout(fault: str) -> float:
    """A stalled body (30 s) must outlast the client's timeout; any other request gets a timeout no loaded
    machine reaches, so a fault is never mistaken for a timeout."""
    return 3.0 if fault == "stall" else 30.0


@pytest.mark.parametrize("fault, kind", [
    ("429", "rate_limit"), ("500", "server_error"), ("503", "server_error"), ("truncated", "bad_response"),
    ("reset", "connection"), pytest.param("stall", "timeout", marks=pytest.mark.slow),  # waits out its timeouts
])
def test_each_fault_is_retried_to_the_bound_then_reported(server, monkeypatch, fault, kind):
    expert = _expert(server, monkeypatch, timeout=_timeout(fault))
    reply = expert.call(f"q [[fault:{fault}]]", PROBLEM)
    assert not reply.ok and reply.error_kind == kind and reply.text == ""
    assert reply.attempts == 3 and reply.cost_usd == 0.0
    assert len(server.requests) == 3  # bounded: 1 + max_retries, and the client's own retries are off
    assert SECRET not in reply.error


@pytest.mark.parametrize("fault", ["429", "500", "503", "truncated", "reset", "stall"])
def test_a_transient_fault_recovers_on_retry(server, monkeypatch, fault):
    reply = _expert(server, monkeypatch, timeout=_timeout(fault)).call(f"q [[fault:{fault}x1]]", PROBLEM)
    assert reply.ok and reply.attempts == 2 and reply.text == "It is \\boxed{2}."
    assert reply.cost_usd == pytest.approx((reply.prompt_tokens * 2.0 + reply.completion_tokens * 8.0) / 1e6)


def test_client_errors_are_not_retried(server, monkeypatch):
    reply = _expert(server, monkeypatch).call("q [[fault:400]]", PROBLEM)
    assert reply.error_kind == "client_error" and reply.attempts == 1 and len(server.requests) == 1


def test_retry_after_is_honoured(monkeypatch):
    with ChatServer(retry_after_s=0.4, max_requests=10, lifetime_s=30) as server:
        reply = _expert(server, monkeypatch).call("q [[fault:429x1]]", PROBLEM)
        assert reply.ok and reply.attempts == 2
        first, second = server.requests
        assert second["t"] - first["t"] >= 0.4  # the server asked for 0.4 s; the backoff alone is < 0.05 s


def test_a_retry_after_past_the_limit_fails_at_once(monkeypatch):
    with ChatServer(retry_after_s=120, max_requests=10, lifetime_s=30) as server:
        reply = _expert(server, monkeypatch, max_retry_after_s=10).call("q [[fault:429]]", PROBLEM)
        assert reply.error_kind == "rate_limit" and reply.attempts == 1


def test_retry_after_header_forms():
    assert resilience.retry_after_seconds({"retry-after": "2"}) == 2.0
    assert resilience.retry_after_seconds({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    assert resilience.retry_after_seconds({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0.0
    assert resilience.retry_after_seconds({"retry-after": "soon"}) is None
    assert resilience.retry_after_seconds({}) is None


def test_backoff_is_exponential_with_jitter_and_capped():
    policy = resilience.RetryPolicy(max_retries=9, backoff_base_s=0.5, backoff_max_s=4.0)
    rng = __import__("random").Random(0)
    for retry in range(8):
        delays = [policy.delay(retry, None, rng) for _ in range(200)]
        assert 0 <= min(delays) and max(delays) <= min(4.0, 0.5 * 2**retry)
    assert policy.delay(0, 1.5, rng) >= 1.5


def test_wrong_usage_block_is_estimated_not_billed_as_garbage(server, monkeypatch):
    expert = _expert(server, monkeypatch)
    for fault in ("badusage", "nousage"):
        reply = expert.call(f"What is 1+1? [[fault:{fault}]]", PROBLEM)
        assert reply.ok and reply.usage_estimated and reply.attempts == 1
        assert reply.prompt_tokens > 0 and reply.completion_tokens >= 0 and 0 < reply.cost_usd < 1e-3
    assert not expert.call("plain", PROBLEM).usage_estimated


def test_concurrency_cap_holds_across_one_loop(monkeypatch):
    # held until 3 are in flight (proof the cap lets 3 through), with a timeout no loaded machine reaches
    with ChatServer(hold_until=3, hold_max_s=10, latency_s=0.02, max_requests=50, lifetime_s=60) as server:
        expert = _expert(server, monkeypatch, concurrency=3, timeout=30, max_retries=0)
        replies = asyncio.run(expert.acall_batch([(f"q{i}", PROBLEM) for i in range(12)]))
        assert all(r.ok for r in replies) and server.max_in_flight == 3


def test_vector_step_calls_run_concurrently(monkeypatch, tmp_path):
    # the server answers none until 16 are in flight: only calls sent all at once can get answers at once
    with ChatServer(hold_until=16, hold_max_s=10, max_requests=50, lifetime_s=60) as server:
        ledger = Ledger()
        pool = load_pool(_pool_file(monkeypatch, server, tmp_path, timeout=30, retries=0), ledger=ledger)
        replies = pool.call_many([(name, f"q{i}", PROBLEM) for i in range(8) for name in ("a", "b")])
        assert all(r.ok for r in replies) and server.max_in_flight == 16
        assert ledger.to_dict()["calls"] == 16


def _pool_file(monkeypatch, server, tmp_dir=None, timeout: float = 30.0, retries: int = 1) -> str:
    import tempfile
    from pathlib import Path

    monkeypatch.setenv("CORL_TEST_KEY", SECRET)
    folder = Path(tmp_dir or tempfile.mkdtemp())
    entry = ("{{name: {n}, backend: openai, model: {n}, price_in: 1, price_out: 4, base_url: '" + server.base_url +
             f"', api_key_env: CORL_TEST_KEY, timeout: {timeout}, max_retries: {retries}, backoff_base_s: 0.01}}}}")
    path = folder / "pool.yaml"
    path.write_text("name: lb\nbudgets: {low: 0.001, medium: 0.01, high: 1}\n"
                    "controller: {name: self, backend: sim, model: s, price_in: 0, price_out: 0, accuracy: {1: 0.5}}\n"
                    f"experts: [{entry.format(n='a')}, {entry.format(n='b')}]\n")
    return str(path)


class _FakeClock:
    def __init__(self):
        self.now, self.slept = 1000.0, []

    def monotonic(self):
        return self.now

    async def sleep(self, seconds):
        self.slept.append(seconds)
        self.now += seconds


def test_rate_limiter_requests_per_minute(monkeypatch):
    clock = _FakeClock()
    monkeypatch.setattr(resilience.time, "monotonic", clock.monotonic)
    monkeypatch.setattr(resilience.asyncio, "sleep", clock.sleep)
    limiter = resilience.RateLimiter(rpm=60)

    async def burst(n):
        for _ in range(n):
            await limiter.acquire(0)

    asyncio.run(burst(60))  # a full minute's worth goes at once
    assert clock.slept == []
    asyncio.run(burst(3))  # then one a second
    assert sum(clock.slept) == pytest.approx(3.0)


def test_rate_limiter_tokens_per_minute_and_settling(monkeypatch):
    clock = _FakeClock()
    monkeypatch.setattr(resilience.time, "monotonic", clock.monotonic)
    monkeypatch.setattr(resilience.asyncio, "sleep", clock.sleep)
    limiter = resilience.RateLimiter(rpm=1000, tpm=600)  # 10 tokens a second
    asyncio.run(limiter.acquire(600))
    assert clock.slept == []
    limiter.settle(estimated=600, actual=700)  # the reply used 100 more: the bucket owes them
    asyncio.run(limiter.acquire(50))
    assert sum(clock.slept) == pytest.approx(15.0)  # 100 owed + 50 wanted at 10 a second


def test_rate_limit_options_reach_the_expert(server, monkeypatch):
    expert = _expert(server, monkeypatch, rpm=100, tpm=10_000)
    assert expert.limiter.active and expert.call("q", PROBLEM).ok
    assert not _expert(server, monkeypatch).limiter.active


def test_no_api_key_in_logs_errors_reprs_or_files(server, monkeypatch, caplog, tmp_path):
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("OPENAI_LOG", "debug")
    ledger = Ledger()
    pool = load_pool(_pool_file(monkeypatch, server, tmp_path), ledger=ledger)
    faults = ["ok", "429", "500", "truncated", "reset", "badusage", "401"]
    replies = pool.call_many([("a", f"q [[fault:{f}]]", PROBLEM) for f in faults])
    assert server.requests[0]["auth"] == f"Bearer {SECRET}"  # it was sent, to the server only
    seen = [caplog.text, repr(pool), repr(pool.experts["a"]), repr(pool.experts["a"].spec),
            ledger.write(tmp_path / "l.json").read_text()]
    seen += [repr(r) for r in replies] + [json.dumps(ledger.to_dict())]
    assert all(SECRET not in text and "SECRETKEY" not in text for text in seen)
    with pytest.raises(ValueError) as error:
        OpenAIExpert(ExpertSpec(name="x", backend="openai", model="m", options={"api_key_env": "CORL_NO_SUCH_KEY"}))
    assert SECRET not in str(error.value)
    refused = replies[faults.index("401")]  # the server quoted the key back in its error message
    assert refused.error_kind == "client_error" and "Incorrect API key" in refused.error

"""Retries, backoff and rate limits for expert calls that go over a network.

- `RetryPolicy`: bounded attempts, exponential backoff with full jitter, `Retry-After` honoured (within
  `max_retry_after_s`; a server asking for a longer wait fails the call instead of parking it).
- `classify(exc)`: an exception -> (failure kind, retryable, Retry-After seconds). Kinds: `rate_limit`
  (429), `server_error` (5xx, 408, 409), `timeout`, `connection` (refused, reset, cut short),
  `bad_response` (a 200 whose body is not a completion: truncated JSON, no choices), `client_error`
  (other 4xx: retrying cannot help), `other`.
- `RateLimiter`: requests and tokens per minute as two token buckets. It is thread-safe and not tied to
  an event loop (a waiter computes its delay under a lock, then sleeps asynchronously), so one limiter
  serves every loop and thread that calls the expert. A request takes its tokens before it is sent
  (the estimate) and settles the difference when the usage is known, so a bucket can go into debt and
  later requests wait it off.

Decision: written here rather than taken from aiolimiter: aiolimiter's limiter is bound to one event loop
and has no way to return or settle tokens, and this is about 60 lines.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import math
import random
import threading
import time
from dataclasses import dataclass
from typing import Any

RETRYABLE = frozenset({"rate_limit", "server_error", "timeout", "connection", "bad_response"})


@dataclass(frozen=True)
class RetryPolicy:
    """`max_retries` retries after the first attempt (so at most `max_retries + 1` requests a call)."""

    max_retries: int = 3
    backoff_base_s: float = 0.5
    backoff_max_s: float = 30.0
    max_retry_after_s: float = 60.0

    def __post_init__(self) -> None:
        for key in ("backoff_base_s", "backoff_max_s", "max_retry_after_s"):
            value = getattr(self, key)
            if not math.isfinite(value) or value < 0:  # a NaN delay would make every retry wait forever
                raise ValueError(f"`{key}` must be a finite number of seconds >= 0, got {value!r}")

    @classmethod
    def from_options(cls, opts: dict[str, Any]) -> RetryPolicy:
        return cls(
            max_retries=max(0, int(opts.get("max_retries", 3))),
            backoff_base_s=float(opts.get("backoff_base_s", 0.5)),
            backoff_max_s=float(opts.get("backoff_max_s", 30.0)),
            max_retry_after_s=float(opts.get("max_retry_after_s", 60.0)),
        )

    def delay(self, retry: int, retry_after: float | None, rng: random.Random) -> float | None:
        """Seconds to wait before retry number `retry` (0-based); None: give up (Retry-After too long)."""
        if retry_after is not None:
            if retry_after > self.max_retry_after_s:
                return None
            return retry_after + rng.uniform(0, min(self.backoff_base_s, 1.0) * 0.1)
        return rng.uniform(0, min(self.backoff_max_s, self.backoff_base_s * 2**retry))


def classify(exc: BaseException) -> tuple[str, bool, float | None]:
    """(kind, retryable, Retry-After seconds or None); see the module docstring."""
    import openai  # only network backends call this, and they import openai anyway

    if isinstance(exc, (asyncio.TimeoutError, openai.APITimeoutError, TimeoutError)):
        return "timeout", True, None
    if isinstance(exc, openai.APIConnectionError):
        return "connection", True, None
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        after = retry_after_seconds(getattr(exc.response, "headers", {}) or {})
        if status == 429:
            return "rate_limit", True, after
        if status >= 500 or status in (408, 409):
            return "server_error", True, after
        return "client_error", False, None
    if isinstance(exc, (json.JSONDecodeError, openai.APIResponseValidationError, BadResponse)):
        return "bad_response", True, None
    if isinstance(exc, (ConnectionError, OSError)):
        return "connection", True, None
    return "other", False, None


class BadResponse(Exception):
    """A 200 whose body is not a usable completion (no choices, no message); `cost_usd` is what its
    usage block billed."""

    def __init__(self, message: str, cost_usd: float = 0.0):
        super().__init__(message)
        self.cost_usd = cost_usd


def retry_after_seconds(headers: Any) -> float | None:
    """`retry-after-ms`, else `Retry-After` as seconds (fractions accepted) or an HTTP date; else None."""
    try:
        value = headers.get("retry-after-ms")
        if value is not None:
            return max(0.0, float(value) / 1000)
        value = headers.get("retry-after")
        if value is None:
            return None
        try:
            return max(0.0, float(value))
        except ValueError:
            when = email.utils.parsedate_to_datetime(value)
            return max(0.0, when.timestamp() - time.time())
    except (TypeError, ValueError, OverflowError):
        return None


class _Bucket:
    """A token bucket of `capacity` refilled at `capacity` per minute; the level may go negative."""

    def __init__(self, per_minute: float):
        self.capacity = float(per_minute)
        self.rate = self.capacity / 60.0
        self.level = self.capacity
        self.stamp = time.monotonic()

    def _refill(self, now: float) -> None:
        self.level = min(self.capacity, self.level + (now - self.stamp) * self.rate)
        self.stamp = now

    def wait_for(self, amount: float, now: float) -> float:
        """Take `amount` if available and return 0, else return the seconds until it will be."""
        self._refill(now)
        amount = min(amount, self.capacity)  # a request larger than a minute's worth waits for a full bucket
        if self.level >= amount:
            self.level -= amount
            return 0.0
        return (amount - self.level) / self.rate


class RateLimiter:
    """Requests (`rpm`) and tokens (`tpm`) per minute; either may be None (unlimited). A value that is
    not a finite number above 0 is refused (ValueError): such a bucket would never refill."""

    def __init__(self, rpm: float | None = None, tpm: float | None = None):
        for label, value in (("rpm", rpm), ("tpm", tpm)):
            # a bucket that refills at a negative, zero or NaN rate never has room: the caller would wait forever
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                      or not math.isfinite(value) or value <= 0):
                raise ValueError(f"`{label}` must be a finite number > 0, got {value!r}; leave it out for no limit")
        self._requests = _Bucket(rpm) if rpm is not None else None
        self._tokens = _Bucket(tpm) if tpm is not None else None
        self._lock = threading.Lock()
        self.waited_s = 0.0

    @property
    def active(self) -> bool:
        return self._requests is not None or self._tokens is not None

    async def acquire(self, tokens: int) -> None:
        """Wait until one request and `tokens` tokens fit; both are taken together."""
        while True:
            with self._lock:
                now = time.monotonic()
                wait = self._requests.wait_for(1, now) if self._requests else 0.0
                if wait == 0.0 and self._tokens is not None:
                    wait = self._tokens.wait_for(tokens, now)
                    if wait and self._requests is not None:
                        self._requests.level += 1  # give the request back: we did not go
            if wait == 0.0:
                return
            self.waited_s += wait
            await asyncio.sleep(wait)

    def settle(self, estimated: int, actual: int) -> None:
        """Correct the token bucket once the real usage is known."""
        if self._tokens is not None:
            with self._lock:
                self._tokens.level -= actual - estimated

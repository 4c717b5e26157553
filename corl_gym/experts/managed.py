"""`ManagedExpert`: an expert seen through the run's cache and ledger.

The pool wraps every expert in one when the pool has a ledger or an entry uses a cache, so every path
that reaches an expert (the env's `call`, the vector env's `Pool.call_many`, a router's labelling calls)
goes through the same steps:

1. cache lookup (modes `read-write`, `replay-only`): a hit returns at once, `cached=True`;
   a miss in `replay-only` returns an error reply naming the key and stops the run's ledger (a miss is
   an error: the run ends, exit code 3, rather than count the miss as a wrong answer);
2. spend cap: the ledger reserves the call's worst-case cost (`Expert.max_cost`) or refuses the call
   (`spend_cap`);
3. the live call (the backend's own `acall_batch`, so batching backends still batch);
4. book the call (settling its reservation), then store a successful reply (modes `read-write`, `record`).
   A reply whose text is not a string becomes a `bad_response` error (its cost kept); a store that fails
   is logged as a warning and the reply is still returned, so a billed call is never lost.

An API model acting as the controller (`chat`) goes through steps 2-4 too, uncached. Anything else
(`spec`, `name`, backend attributes such as `params` or `seed`) is the wrapped expert's.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from corl_gym.data import Problem
from corl_gym.experts.base import Expert, ExpertReply, checked_reply, error_reply
from corl_gym.experts.cache import CacheConfig, ExpertCache, cache_key, open_cache
from corl_gym.experts.ledger import Ledger

_LOG = logging.getLogger(__name__)


@dataclass
class _Pending:
    key: str | None
    request: dict[str, Any] | None
    reservation: int | None


class ManagedExpert(Expert):
    """See the module docstring."""

    def __init__(self, inner: Expert, *, cache: CacheConfig | None = None, ledger: Ledger | None = None,
                 account: str | None = None):
        super().__init__(inner.spec)
        self.inner = inner
        self.account = account or inner.name  # the ledger's name for it (the pool says `pool/expert`)
        self.cache_config = cache if cache is not None and cache.active else None
        self.cache: ExpertCache | None = open_cache(cache.path) if self.cache_config else None
        self.ledger = ledger

    def __getattr__(self, name: str) -> Any:
        if name == "inner":  # not set yet (unpickling, or __init__ failed): no recursion
            raise AttributeError(name)
        return getattr(self.inner, name)

    # ----------------------------------------------------------------------------------------- calls
    def call(self, query: str, problem: Problem) -> ExpertReply:
        pending = self._before(query, problem)
        if isinstance(pending, ExpertReply):
            return pending
        try:
            reply = self.inner.call(query, problem)
        except Exception:
            self._release(pending)
            raise  # a configuration error (a replay problem it does not cover) stays an exception
        # an interrupt (Ctrl-C, SIGTERM) keeps the reservation: the call may have been sent and billed
        return self._after(pending, reply)

    async def acall(self, query: str, problem: Problem) -> ExpertReply:
        return (await self.acall_batch([(query, problem)]))[0]

    def chat(self, messages: list[dict[str, str]], stop: list[str] | None = None) -> ExpertReply:
        """A multi-turn request of an API model acting as the controller (`openai` entries): reserved at its
        worst case and booked like a call, so the spend cap covers the controller's own tokens; never cached."""
        pending = _Pending(None, None, None)
        if self.ledger is not None:
            pending.reservation = self.ledger.reserve(self.account, self.inner.max_chat_cost(messages))
            if pending.reservation is None:
                return self._book(ExpertReply(text="", error=f"spend cap reached: {self.ledger.stop_reason}",
                                              error_kind="spend_cap", attempts=0))
        try:
            reply = self.inner.chat(messages, stop)
        except Exception:
            self._release(pending)
            raise
        return self._after(pending, reply)

    async def acall_batch(self, items: list[tuple[str, Problem]]) -> list[ExpertReply]:
        before = [self._before(query, problem) for query, problem in items]
        live = [i for i, b in enumerate(before) if isinstance(b, _Pending)]
        try:
            replies = await self.inner.acall_batch([items[i] for i in live]) if live else []
        except Exception as exc:  # acall_batch should never raise; if a backend's does, every call failed
            replies = [error_reply(exc)] * len(live)
        out: list[Any] = list(before)
        for position, index in enumerate(live):  # each call on its own: one bad reply spoils no other
            reply = replies[position] if position < len(replies) else error_reply(RuntimeError("no reply"))
            try:
                out[index] = self._after(before[index], reply)
            except Exception as exc:  # noqa: BLE001 - e.g. a ledger that cannot book it
                out[index] = error_reply(exc)
        return out

    # --------------------------------------------------------------------------------------- helpers
    def _before(self, query: str, problem: Problem) -> ExpertReply | _Pending:
        key = request = None
        if self.cache is not None:
            request = self.inner.cache_request(query, problem)
            if request is not None:
                key = cache_key(self.name, request)
                if self.cache_config.mode in ("read-write", "replay-only"):
                    start = time.perf_counter()
                    hit = self.cache.get(key)
                    if hit is not None:
                        return self._book(_with_latency(hit, time.perf_counter() - start))
                    if self.cache_config.mode == "replay-only":
                        return self._miss(key)
        reservation = None
        if self.ledger is not None:
            reservation = self.ledger.reserve(self.account, self.inner.max_cost(query, problem))
            if reservation is None:
                return self._book(ExpertReply(text="", error=f"spend cap reached: {self.ledger.stop_reason}",
                                              error_kind="spend_cap", attempts=0))
        return _Pending(key, request, reservation)

    def _miss(self, key: str) -> ExpertReply:
        error = f"cache miss in replay-only mode: expert {self.name!r}, key {key}"
        if self.ledger is not None:
            self.ledger.stop(f"{error} ({self.cache.path}); replay-only never calls a live expert: rerun with "
                             "--cache-mode read-write to make (and pay for) the missing calls")
        return self._book(ExpertReply(text="", error=error, error_kind="cache_miss", attempts=0))

    def _after(self, pending: _Pending, reply: Any) -> ExpertReply:
        """Book the call (settling its reservation), then store it: the provider billed it whatever the cache
        does, so a store that fails (a full disk, a locked file) is a warning, never a lost reply."""
        reply = checked_reply(reply, self.name)
        if self.ledger is not None:
            self.ledger.record(self.account, reply, pending.reservation)
        if pending.key is not None and reply.ok and not reply.cached:
            try:
                self.cache.put(pending.key, self.name, pending.request, reply)
            except Exception as exc:  # noqa: BLE001 - the reply is good; only the cache copy is lost
                _LOG.warning("expert cache %s: could not store a reply of expert %r (%s: %s); the reply is "
                             "used, but this call will be made again next time", self.cache.path, self.name,
                             type(exc).__name__, str(exc)[:200])
        return reply

    def _release(self, pending: _Pending) -> None:
        if self.ledger is not None:
            self.ledger.release(pending.reservation)

    def _book(self, reply: ExpertReply) -> ExpertReply:
        if self.ledger is not None:
            self.ledger.record(self.account, reply)
        return reply

    def cache_request(self, query: str, problem: Problem) -> dict[str, Any] | None:
        return self.inner.cache_request(query, problem)

    def max_cost(self, query: str, problem: Problem) -> float:
        return self.inner.max_cost(query, problem)

    def uncovered(self, problems: list[Problem]) -> list[str]:
        return self.inner.uncovered(problems)

    def close(self) -> None:
        self.inner.close()

    def __repr__(self) -> str:
        return f"Managed{self.inner!r}"


def _with_latency(reply: ExpertReply, latency_s: float) -> ExpertReply:
    return ExpertReply(text=reply.text, prompt_tokens=reply.prompt_tokens, completion_tokens=reply.completion_tokens,
                       cost_usd=reply.cost_usd, latency_s=latency_s, cached=True, attempts=0)

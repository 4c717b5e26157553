"""The expert protocol: one call in, one `ExpertReply` out, sync or async.

Every backend (sim, replay, openai, hf, vllm) implements `call` or `acall`; the base class derives the
other. Cost always comes from the reply's token usage and the entry's price table, so a pool's YAML is
the single place prices live.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import numbers
from dataclasses import dataclass, field
from typing import Any

from corl_gym.data import Problem

# Tokens a chat request spends on roles and formatting besides the query itself.
CHAT_OVERHEAD_TOKENS = 16


@dataclass(frozen=True)
class ExpertReply:
    """What an expert call returns. A failed call is still a call: `error` says why, `text` may be empty,
    and `cost_usd` is what the provider billed (0 when nothing was billed).

    `cached`: served from the expert cache (`cost_usd` is then the original call's cost, which the
    episode is charged, while the run's ledger counts $0). `attempts`: requests made for this call
    (retries included). `error_kind`: a short failure class (`rate_limit`, `server_error`, `timeout`,
    `connection`, `bad_response`, `client_error`, `cache_miss`, `spend_cap`, `exception`) or None.
    `usage_estimated`: the provider sent no usable usage block, so tokens were estimated."""

    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    latency_s: float = 0.0
    cached: bool = False
    error: str | None = None
    attempts: int = 1
    error_kind: str | None = None
    usage_estimated: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class ExpertSpec:
    """One expert entry of a pool file. Prices are USD per 1M tokens; `options` holds backend options
    (`base_url`, `api_key_env`, `max_tokens`, `temperature`, `concurrency`, `file`, ...)."""

    name: str
    backend: str
    model: str
    description: str = ""
    price_in: float = 0.0
    price_out: float = 0.0
    options: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        return (prompt_tokens * self.price_in + completion_tokens * self.price_out) / 1e6

    def expected_cost(self, query: str) -> float:
        """What a call is expected to cost before it is made: used by the budget's hard cap and by
        budget-aware routers. Prompt tokens are estimated from the query (about 4 characters a token
        plus the chat overhead); completion tokens from the entry's `expected_completion_tokens`
        option, else its `max_tokens`, else 512."""
        prompt_tokens = len(query) // 4 + CHAT_OVERHEAD_TOKENS
        completion = self.options.get("expected_completion_tokens", self.options.get("max_tokens", 512))
        return self.cost(prompt_tokens, int(completion))


class Expert:
    """Base class of every backend. Subclasses override `call` (blocking) or `acall` (async) or both."""

    # The completion cap the backend sends when the entry sets no `max_tokens` (None: it sets none).
    default_max_tokens: int | None = None

    def __init__(self, spec: ExpertSpec):
        self.spec = spec

    @property
    def name(self) -> str:
        return self.spec.name

    def call(self, query: str, problem: Problem) -> ExpertReply:
        if type(self).acall is Expert.acall:
            raise NotImplementedError(f"{type(self).__name__} implements neither call nor acall")
        return asyncio.run(self.acall(query, problem))

    async def acall(self, query: str, problem: Problem) -> ExpertReply:
        if type(self).call is Expert.call:
            raise NotImplementedError(f"{type(self).__name__} implements neither call nor acall")
        return await asyncio.to_thread(self.call, query, problem)

    async def acall_batch(self, items: list[tuple[str, Problem]]) -> list[ExpertReply]:
        """Answer several (query, problem) pairs; never raises (an exception becomes a reply's `error`).

        The default runs `acall` concurrently, at most the entry's `concurrency` option (default 32) at
        a time; backends that batch natively (vllm) override it."""
        limit = asyncio.Semaphore(max(1, int(self.spec.options.get("concurrency", 32))))

        async def one(query: str, problem: Problem) -> ExpertReply:
            async with limit:
                try:
                    return await self.acall(query, problem)
                except Exception as exc:  # a failed call is still a call: report it
                    return error_reply(exc)

        return list(await asyncio.gather(*(one(q, p) for q, p in items)))

    def max_cost(self, query: str, problem: Problem) -> float:
        """The most this call can cost, which a run's spend cap reserves before the call is made: one prompt
        token per UTF-8 byte of the query (a byte-level BPE token never covers less than a byte) plus the
        chat overhead, and as many completion tokens as the request allows (`max_tokens`, else the backend's
        `default_max_tokens`). A backend that sends no completion cap has no worst case: its expected
        completion stands in. Backends that know a call's cost in advance (sim, replay) return it exactly."""
        limit = self.spec.options.get("max_tokens", self.default_max_tokens)
        if limit is None:
            limit = self.spec.options.get("expected_completion_tokens", 512)
        return self.spec.cost(max_prompt_tokens(query), int(limit))

    def cache_request(self, query: str, problem: Problem) -> dict[str, Any] | None:
        """What identifies this call's answer for the expert cache (model, messages, sampling
        parameters, seed), or None when the backend's answers are not cacheable (sim and replay answer
        per problem, at no cost: caching them would be wrong and useless)."""
        return None

    def uncovered(self, problems: list[Problem]) -> list[str]:
        """Ids of `problems` this expert cannot answer (only replay experts have any)."""
        return []

    def close(self) -> None:
        """Release clients, engines or files. Idempotent."""

    def __repr__(self) -> str:  # never shows options: they may name secrets
        return f"{type(self).__name__}(name={self.spec.name!r}, model={self.spec.model!r})"


# Helpers shared by backends that do not tokenize (sim, replay): ~4 characters per token is the usual
# rule of thumb for English and LaTeX under GPT/Llama BPE vocabularies; `expected_cost` uses the same.
CHARS_PER_TOKEN = 4


def estimate_prompt_tokens(query: str, overhead: int = CHAT_OVERHEAD_TOKENS) -> int:
    """Approximate prompt tokens of a one-message chat request carrying `query`."""
    return len(query) // CHARS_PER_TOKEN + overhead


def max_prompt_tokens(*messages: str) -> int:
    """An upper bound on the prompt tokens of a chat request with these messages: one token per UTF-8 byte
    (no byte-level BPE token is shorter) plus the chat overhead per message."""
    return sum(len(m.encode("utf-8", "surrogatepass")) + CHAT_OVERHEAD_TOKENS for m in messages)


def boxed_reply(answer: str, model: str, steps: int) -> str:
    """A short worked-style reply ending with `\\boxed{answer}`, for backends that have no real text.

    It stays short on purpose: the env appends the whole reply to the controller's context, and the
    billed completion tokens are reported separately in `ExpertReply.completion_tokens`."""
    return (
        f"[{model}] I worked through the problem in {steps} steps, checking each intermediate result.\n"
        f"The final answer is $\\boxed{{{answer}}}$."
    )


def storable_text(text: str) -> str:
    """`text` with every lone surrogate (which no UTF-8 file or SQLite cache can hold) replaced by U+FFFD;
    proper surrogate pairs become the character they encode. Text without surrogates is returned as is."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")


def is_finite(value: Any) -> bool:
    """`math.isfinite` that says False, not OverflowError, for an int past float's range (10**400)."""
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def amount(value: Any) -> float | None:
    """`value` as a float if it is a finite non-negative real number (not a bool, not a string), else None."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    try:
        value = float(value)
    except (OverflowError, ValueError):  # an int past float's range (10**400)
        return None
    return value if math.isfinite(value) and value >= 0 else None


def _shown(value: Any) -> str:
    """A short repr for an error message that cannot itself fail (a 5000-digit int's repr raises)."""
    try:
        return repr(value)[:40]
    except Exception:  # noqa: BLE001 - the value is untrusted; its type is enough to say what was wrong
        return f"<{type(value).__name__[:40]}>"


def checked_reply(reply: Any, name: str) -> ExpertReply:
    """`reply` when it is a well-formed `ExpertReply`; else a `bad_response` error reply that keeps what it
    validly cost. A backend handing back non-text, or a cost or token count that is not a finite
    non-negative number, would break the cache, poison the ledger's spend (NaN passes every cap) and the
    env's reward; `error_kind` and `error` are made strings for the ledger's counts."""
    if _well_formed(reply):
        return reply  # the common case, decided by exact types alone: a reply is checked twice per env call
    if not isinstance(reply, ExpertReply):
        return ExpertReply(text="", error=f"expert {name!r} returned a {type(reply).__name__}, not an ExpertReply",
                           error_kind="bad_response")
    problems, fixed = [], {}
    for key in ("cost_usd", "prompt_tokens", "completion_tokens", "attempts"):
        value = amount(getattr(reply, key))
        if value is None:
            problems.append(f"{key}={_shown(getattr(reply, key))}")
            value = 0.0 if key != "attempts" else 1.0
        if key != "cost_usd":
            value = int(value)
        if value != getattr(reply, key) or type(value) is not type(getattr(reply, key)):
            fixed[key] = value
    if not isinstance(reply.text, str):
        problems.append(f"replied with a {type(reply.text).__name__[:60]}, not text")
        fixed["text"] = ""
    else:
        text = storable_text(reply.text)
        if text is not reply.text:
            fixed["text"] = text
    error, kind = reply.error, reply.error_kind
    if error is not None and not isinstance(error, str):
        error = fixed["error"] = f"an error of type {type(error).__name__[:60]}"
    if kind is not None and not isinstance(kind, str):
        kind = fixed["error_kind"] = "other"
    if problems:
        note = f"expert {name!r} sent a bad reply: {'; '.join(problems)}"
        fixed["error"] = note if error is None else f"{error}; {note}"
        fixed["error_kind"] = kind or "bad_response"
    return dataclasses.replace(reply, **fixed) if fixed else reply


def billable_reply(reply: Any, name: str, spent_usd: float) -> ExpertReply:
    """`checked_reply`, plus the one rule a running total adds: a cost so large that `spent_usd + cost` (an
    episode's total after this call) overflows is not valid either. Such a reply becomes a `bad_response`
    that charges $0 and keeps its other valid amounts, so charging it can never make the total inf."""
    reply = checked_reply(reply, name)
    if math.isfinite(spent_usd + reply.cost_usd):
        return reply
    note = f"expert {name!r} sent a bad reply: cost_usd={reply.cost_usd!r:.40} overflows the episode's total"
    error = note if reply.error is None else f"{reply.error}; {note}"
    return dataclasses.replace(reply, cost_usd=0.0, error=error, error_kind="bad_response")


_MAX_EXACT_COUNT = 2**53  # a count up to here survives the float round trip of `amount` unchanged


def _well_formed(reply: Any) -> bool:
    """Whether `checked_reply` would return `reply` unchanged, decided by exact types and bounds only (no
    subclass, whose methods could lie, takes this path): finite non-negative float cost, exact int counts,
    text that UTF-8 can hold, and an error and its kind that are None or str."""
    if type(reply) is not ExpertReply or type(reply.cost_usd) is not float or not 0.0 <= reply.cost_usd < math.inf:
        return False
    for count in (reply.prompt_tokens, reply.completion_tokens, reply.attempts):
        if type(count) is not int or not 0 <= count <= _MAX_EXACT_COUNT:
            return False
    text, error, kind = reply.text, reply.error, reply.error_kind
    return (type(text) is str and (text.isascii() or storable_text(text) is text)
            and (error is None or type(error) is str) and (kind is None or type(kind) is str))


def error_reply(exc: BaseException, **usage: Any) -> ExpertReply:
    """The reply of a failed call: empty text, `error` naming the exception type and message."""
    return ExpertReply(text="", error=f"{type(exc).__name__}: {exc}", error_kind="exception", **usage)

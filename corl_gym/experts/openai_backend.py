"""Backend `openai`: any OpenAI-compatible chat-completions endpoint (OpenAI, vLLM or SGLang servers, ...).

Entry options:

- `base_url`: the endpoint (default: OpenAI's). `api_key_env`: the environment variable holding the key
  (default `OPENAI_API_KEY`); `api_key_env: null` for servers that need none (sends "EMPTY").
- `max_tokens` (default 4096, always sent, so a reply is never billed past it) under `max_tokens_param`
  (default `max_tokens`; OpenAI's reasoning models need `max_completion_tokens`); `temperature` (default
  0.0; `null` omits it, as o3 requires); `seed` (sent when set); `system_prompt` (optional);
  `extra_params` (a mapping merged into the request, e.g. `reasoning_effort`; it may not set the
  completion cap, which the spend cap reserves: use `max_tokens`).
- `timeout`: seconds one attempt may take in all, body included (default 120).
- `max_retries` (default 3; at most `max_retries + 1` requests a call), `backoff_base_s` (0.5),
  `backoff_max_s` (30), `max_retry_after_s` (60): see `resilience.RetryPolicy`.
- `concurrency`: requests in flight to this expert (default 32), per event loop.
- `rpm`, `tpm`: requests and tokens per minute (default unlimited), shared by every loop and thread.
- `cache: {path, mode}`: the pool's expert cache (see `cache.py`; applied by the pool).

Decisions: the key is read once, when the pool loads (a missing key fails there, naming the variable);
surrounding whitespace (a pasted newline) is stripped, and a key with control or non-ASCII characters is
refused there, in a message that does not quote it (the HTTP library would otherwise put it in an
"illegal header" error and its debug log). It is kept out of `repr` and scrubbed from every error
message. The client's own retries are off (`max_retries=0`): ours are the only ones, so the bound is
exact and the ledger sees each. A call never raises: after the last attempt, or on an error retrying
cannot fix (4xx other than 408/409/429), it returns a reply with `error` and `error_kind`; its `cost_usd`
is what the responses we saw billed (an HTTP error bills nothing; a timed-out request may have been
billed by the provider, but we never see its usage). A 200 whose message content is not a string (a list,
an object) is a bad response like one with no choices; lone surrogates in the text are replaced by
U+FFFD, so a reply can always be stored. A usage block that is missing or malformed (negative, not
integers) is replaced by the ~4-characters-a-token estimate and flagged `usage_estimated`. The async
client and the concurrency semaphore are made lazily, one per event loop, because an httpx connection
pool cannot outlive the loop that opened it; the blocking `call` runs on one background loop per expert,
so sequential calls reuse a client and its connections.
"""

from __future__ import annotations

import asyncio
import math
import os
import random
import re
import time
import weakref
from typing import Any

from corl_gym.data import Problem
from corl_gym.experts.base import (
    CHARS_PER_TOKEN,
    Expert,
    ExpertReply,
    ExpertSpec,
    estimate_prompt_tokens,
    max_prompt_tokens,
    storable_text,
)
from corl_gym.experts.loop import LoopThread, ensure
from corl_gym.experts.resilience import BadResponse, RateLimiter, RetryPolicy, classify

_DEADLINE = getattr(asyncio, "timeout", None)
_KEY_PATTERN = re.compile(r"\b(sk|key|Bearer)[-_ ][A-Za-z0-9_\-*.]{6,}")
DEFAULT_MAX_TOKENS = 4096
_COMPLETION_CAPS = ("max_tokens", "max_completion_tokens")


class OpenAIExpert(Expert):
    """An expert behind an OpenAI-compatible chat-completions API; see the module docstring."""

    default_max_tokens = DEFAULT_MAX_TOKENS

    def __init__(self, spec: ExpertSpec, **_: Any):
        super().__init__(spec)
        opts = spec.options
        self.base_url: str | None = opts.get("base_url")
        self._api_key = _api_key(spec.name, opts.get("api_key_env", "OPENAI_API_KEY"))
        self.timeout = float(opts.get("timeout", 120.0))
        if not math.isfinite(self.timeout) or self.timeout <= 0:
            raise ValueError(f"`timeout` must be a finite number of seconds > 0, got {opts.get('timeout')!r}")
        self.retry = RetryPolicy.from_options(opts)
        self.max_retries = self.retry.max_retries
        self.concurrency = max(1, int(opts.get("concurrency", 32)))
        self.limiter = RateLimiter(opts.get("rpm"), opts.get("tpm"))
        self.params = self._request_params(opts)
        self.max_tokens = int(opts.get("max_tokens", DEFAULT_MAX_TOKENS))
        self._completion_estimate = int(opts.get("expected_completion_tokens", self.max_tokens))
        self._rng = random.Random()
        self._clients: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self._runner: LoopThread | None = None

    @staticmethod
    def _request_params(opts: dict[str, Any]) -> dict[str, Any]:
        cap = str(opts.get("max_tokens_param", "max_tokens"))
        if cap not in _COMPLETION_CAPS:
            raise ValueError(f"`max_tokens_param` must be one of {', '.join(_COMPLETION_CAPS)}, got {cap!r}")
        extra = opts.get("extra_params") or {}
        if not isinstance(extra, dict):
            raise ValueError(f"`extra_params` must be a mapping of request parameters, got a {type(extra).__name__}")
        if set(extra) & set(_COMPLETION_CAPS):
            raise ValueError("`extra_params` may not set max_tokens or max_completion_tokens: the spend cap reserves "
                             "the entry's `max_tokens` (sent under `max_tokens_param`), so set those instead")
        params: dict[str, Any] = {cap: int(opts.get("max_tokens", DEFAULT_MAX_TOKENS))}
        temperature = opts.get("temperature", 0.0)
        if temperature is not None:
            params["temperature"] = float(temperature)
        if opts.get("seed") is not None:
            params["seed"] = int(opts["seed"])
        params.update(extra)
        return params

    def max_cost(self, query: str, problem: Problem) -> float:
        """The worst case of one call: the completion cap the request sends, and one prompt token per byte
        of its messages plus the chat overhead (see `Expert.max_cost`)."""
        return self.max_chat_cost(self._messages(query))

    def max_chat_cost(self, messages: list[dict[str, str]]) -> float:
        """The worst case of one `chat` request with these messages."""
        return self.spec.cost(max_prompt_tokens(*(str(m["content"]) for m in messages)), self.max_tokens)

    def _loop_state(self) -> tuple[Any, asyncio.Semaphore]:
        from openai import AsyncOpenAI, DefaultAsyncHttpxClient  # lazy: the client library is heavy to import

        loop = asyncio.get_running_loop()
        state = self._clients.get(loop)
        if state is None:
            # A plain httpx client: the SDK's default one schedules its own close on whatever loop runs
            # when it is collected, which fails once its loop is gone.
            http = DefaultAsyncHttpxClient(timeout=self.timeout)
            client = AsyncOpenAI(api_key=self._api_key, base_url=self.base_url, max_retries=0, timeout=self.timeout,
                                 http_client=http)
            state = (client, asyncio.Semaphore(self.concurrency))
            self._clients[loop] = state
        return state

    def _messages(self, query: str) -> list[dict[str, str]]:
        system = self.spec.options.get("system_prompt")
        return ([{"role": "system", "content": str(system)}] if system else []) + [{"role": "user", "content": query}]

    def call(self, query: str, problem: Problem) -> ExpertReply:
        """Blocking call on the expert's own background loop, so sequential calls (the env's step) share
        one client and its kept-alive connections instead of opening a loop and a client each."""
        self._runner = ensure(self._runner, f"openai-expert-{self.name}")
        return self._runner.run(self.acall(query, problem))

    def chat(self, messages: list[dict[str, str]], stop: list[str] | None = None) -> ExpertReply:
        """A blocking multi-turn request (an API model acting as the controller) with the same retries,
        limits and deadlines as `call`; `stop` strings are sent as the request's stop sequences."""
        self._runner = ensure(self._runner, f"openai-expert-{self.name}")
        return self._runner.run(self.achat(messages, stop))

    def cache_request(self, query: str, problem: Problem) -> dict[str, Any]:
        return {"model": self.spec.model, "messages": self._messages(query), "params": self.params}

    async def acall_batch(self, items: list[tuple[str, Problem]]) -> list[ExpertReply]:
        # `acall` never raises and holds the per-loop concurrency slot itself: no second semaphore here
        return list(await asyncio.gather(*(self.acall(query, problem) for query, problem in items)))

    async def acall(self, query: str, problem: Problem) -> ExpertReply:
        return await self.achat(self._messages(query))

    async def achat(self, messages: list[dict[str, str]], stop: list[str] | None = None) -> ExpertReply:
        start = time.perf_counter()
        client, slots = self._loop_state()
        text_in = "\n".join(m["content"] for m in messages)
        extra = {"stop": list(stop)} if stop else {}
        estimate = estimate_prompt_tokens(text_in) + self._completion_estimate
        billed, attempts = 0.0, 0
        while True:
            attempts += 1
            async with slots:
                if self.limiter.active:
                    await self.limiter.acquire(estimate)
                try:
                    reply = await self._attempt(client, messages, text_in, extra)
                except Exception as exc:  # HTTP errors, timeouts, garbage bodies: classified below
                    failure, (kind, retryable, after) = exc, classify(exc)
                    billed += getattr(exc, "cost_usd", 0.0)  # a 200 we could not use may still be billed
                    retryable = retryable and not getattr(exc, "cost_usd", 0.0)  # paid once: never pay again
                    self.limiter.settle(estimate, 0)
                else:
                    self.limiter.settle(estimate, reply.prompt_tokens + reply.completion_tokens)
                    return _finish(reply, billed, attempts, start)
            delay = self.retry.delay(attempts - 1, after, self._rng) if retryable else None
            if attempts > self.retry.max_retries or delay is None:
                error = self._scrub(failure)
                return ExpertReply(text="", cost_usd=billed, latency_s=time.perf_counter() - start, error=error,
                                   attempts=attempts, error_kind=kind)
            await asyncio.sleep(delay)

    async def _attempt(self, client: Any, messages: list[dict[str, str]], query: str,
                       extra: dict[str, Any] | None = None) -> ExpertReply:
        # The deadline bounds the whole attempt: httpx's timeout is per read, so a trickling body evades it.
        request = client.chat.completions.create(
            model=self.spec.model, messages=messages, **self.params, **(extra or {})
        )
        if _DEADLINE is not None:  # Python 3.11+: no extra task per call
            async with _DEADLINE(self.timeout):
                response = await request
        else:
            response = await asyncio.wait_for(request, self.timeout)
        usage = _valid_usage(getattr(response, "usage", None))
        choices = getattr(response, "choices", None)
        if not choices or getattr(choices[0], "message", None) is None:
            raise BadResponse("the response has no choices", self.spec.cost(*usage) if usage else 0.0)
        text = choices[0].message.content
        if text is None:
            text = ""
        elif not isinstance(text, str):  # a list or object where the protocol says a string: unusable
            raise BadResponse(f"the response's message content is a {type(text).__name__}, not text",
                              self.spec.cost(*usage) if usage else 0.0)
        text = storable_text(text)  # a lone surrogate (from a `\ud800` escape) fits no file or cache
        if usage is None:  # missing or nonsense usage: estimate rather than bill nothing or garbage
            prompt, completion = estimate_prompt_tokens(query), len(text) // CHARS_PER_TOKEN
        else:
            prompt, completion = usage
        return ExpertReply(text=text, prompt_tokens=prompt, completion_tokens=completion,
                           cost_usd=self.spec.cost(prompt, completion), usage_estimated=usage is None)

    def _scrub(self, exc: BaseException) -> str:
        """`Type: message` with the key, and anything shaped like a key, removed."""
        detail = str(exc) or (
            f"no complete response within {self.timeout:g} s" if isinstance(exc, TimeoutError) else ""
        )
        message = f"{type(exc).__name__}: {detail}"
        if self._api_key and self._api_key != "EMPTY":
            message = message.replace(self._api_key, "<redacted>")
        return _KEY_PATTERN.sub(r"\1-<redacted>", message)[:500]

    def close(self) -> None:
        # The clients' connection pools belong to their event loops, which may be gone; dropping the
        # references lets them be collected instead of awaiting `aclose` on a dead loop.
        self._clients = weakref.WeakKeyDictionary()
        if self._runner is not None:
            self._runner.stop()
            self._runner = None


def _api_key(expert: str, env_name: Any) -> str:
    """The key in the environment variable `env_name` ("EMPTY" for `api_key_env: null`), stripped of
    surrounding whitespace. Errors never quote the key."""
    if env_name is None:
        return "EMPTY"
    key = os.environ.get(str(env_name), "").strip()
    if not key:
        raise ValueError(f"expert {expert!r} needs an API key: set the environment variable {env_name} "
                         f"(or `api_key_env` in the pool file; `api_key_env: null` for servers without keys)")
    if not (key.isascii() and key.isprintable()):
        raise ValueError(f"expert {expert!r}: the API key in the environment variable {env_name} has control or "
                         f"non-ASCII characters (a pasted line break or quote?); set it to the key alone")
    return key


def _valid_usage(usage: Any) -> tuple[int, int] | None:
    if usage is None:
        return None
    counts = (getattr(usage, "prompt_tokens", None), getattr(usage, "completion_tokens", None))
    if all(isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in counts):
        return counts[0], counts[1]
    return None


def _finish(reply: ExpertReply, billed: float, attempts: int, start: float) -> ExpertReply:
    return ExpertReply(
        text=reply.text, prompt_tokens=reply.prompt_tokens, completion_tokens=reply.completion_tokens,
        cost_usd=reply.cost_usd + billed, latency_s=time.perf_counter() - start, attempts=attempts,
        usage_estimated=reply.usage_estimated,
    )

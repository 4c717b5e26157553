"""Backend `openai`: any OpenAI-compatible chat-completions endpoint (OpenAI, vLLM or SGLang servers, ...).

Entry options:

- `base_url`: the endpoint (default: OpenAI's). `api_key_env`: the environment variable holding the key
  (default `OPENAI_API_KEY`); `api_key_env: null` for servers that need none (sends "EMPTY").
- `max_tokens` (default 4096) sent under `max_tokens_param` (default `max_tokens`; OpenAI's reasoning
  models need `max_completion_tokens`); `temperature` (default 0.0; `null` omits it, as o3 requires);
  `system_prompt` (optional); `extra_params` (a mapping merged into the request, e.g. `reasoning_effort`).
- `timeout` (seconds a request, default 120), `max_retries` (the client's retries, default 1),
  `concurrency` (calls in flight, default 32).

Decisions: the key is read once, when the pool loads (a missing key fails there, naming the variable),
and is kept out of `repr` and scrubbed from every error message. A call never raises: an HTTP error, a
timeout or an unreadable response becomes a reply with `error` set and cost 0 (nothing billed that we
can see). Usage comes from the response; a server that omits it gets the ~4-characters-a-token estimate.
The async client is made lazily, one per event loop, because an httpx connection pool cannot outlive
the loop that opened it (`call` runs each request in a fresh loop).
"""

from __future__ import annotations

import os
import re
import time
import weakref
from typing import Any

from corl_gym.data import Problem
from corl_gym.experts.base import CHARS_PER_TOKEN, Expert, ExpertReply, ExpertSpec, estimate_prompt_tokens

_KEY_PATTERN = re.compile(r"\b(sk|key|Bearer)[-_ ][A-Za-z0-9_\-*.]{6,}")


class OpenAIExpert(Expert):
    """An expert behind an OpenAI-compatible chat-completions API; see the module docstring."""

    def __init__(self, spec: ExpertSpec, **_: Any):
        super().__init__(spec)
        opts = spec.options
        self.base_url: str | None = opts.get("base_url")
        env_name = opts.get("api_key_env", "OPENAI_API_KEY")
        if env_name is None:
            self._api_key = "EMPTY"
        else:
            self._api_key = os.environ.get(str(env_name), "")
            if not self._api_key:
                raise ValueError(
                    f"expert {spec.name!r} needs an API key: set the environment variable {env_name} "
                    f"(or `api_key_env` in the pool file; `api_key_env: null` for servers without keys)"
                )
        self.timeout = float(opts.get("timeout", 120.0))
        self.max_retries = int(opts.get("max_retries", 1))
        self.params = self._request_params(opts)
        self._clients: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    @staticmethod
    def _request_params(opts: dict[str, Any]) -> dict[str, Any]:
        params: dict[str, Any] = {str(opts.get("max_tokens_param", "max_tokens")): int(opts.get("max_tokens", 4096))}
        temperature = opts.get("temperature", 0.0)
        if temperature is not None:
            params["temperature"] = float(temperature)
        params.update(opts.get("extra_params") or {})
        return params

    def _client(self) -> Any:
        import asyncio

        from openai import AsyncOpenAI  # lazy: the client library is heavy to import

        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            client = AsyncOpenAI(api_key=self._api_key, base_url=self.base_url, max_retries=self.max_retries)
            self._clients[loop] = client
        return client

    def _messages(self, query: str) -> list[dict[str, str]]:
        system = self.spec.options.get("system_prompt")
        return ([{"role": "system", "content": str(system)}] if system else []) + [{"role": "user", "content": query}]

    async def acall(self, query: str, problem: Problem) -> ExpertReply:
        start = time.perf_counter()
        try:
            response = await self._client().chat.completions.create(
                model=self.spec.model, messages=self._messages(query), timeout=self.timeout, **self.params
            )
            text = response.choices[0].message.content or ""
            usage = getattr(response, "usage", None)
            if usage is not None:
                prompt, completion = int(usage.prompt_tokens), int(usage.completion_tokens)
            else:  # some servers omit usage: estimate rather than bill nothing
                prompt, completion = estimate_prompt_tokens(query), len(text) // CHARS_PER_TOKEN
        except Exception as exc:  # HTTP errors, timeouts, garbage bodies: the call failed, never raise
            return ExpertReply(text="", latency_s=time.perf_counter() - start, error=self._scrub(exc))
        return ExpertReply(
            text=text,
            prompt_tokens=prompt,
            completion_tokens=completion,
            cost_usd=self.spec.cost(prompt, completion),
            latency_s=time.perf_counter() - start,
        )

    def _scrub(self, exc: BaseException) -> str:
        """`Type: message` with the key, and anything shaped like a key, removed."""
        message = f"{type(exc).__name__}: {exc}"
        if self._api_key and self._api_key != "EMPTY":
            message = message.replace(self._api_key, "<redacted>")
        return _KEY_PATTERN.sub(r"\1-<redacted>", message)[:500]

    def close(self) -> None:
        # The clients' connection pools belong to their event loops, which may be gone; dropping the
        # references lets them be collected instead of awaiting `aclose` on a dead loop.
        self._clients = weakref.WeakKeyDictionary()

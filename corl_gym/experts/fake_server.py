"""A loopback chat-completions server with fault injection, for tests and benchmarks (stdlib only).

`ChatServer` speaks enough of HTTP/1.1 (keep-alive, Content-Length bodies) and of the OpenAI
chat-completions protocol (`POST /v1/chat/completions`) for the `openai` client. It runs an asyncio
loop in a daemon thread on 127.0.0.1 with an ephemeral port, serves at most `max_requests` requests and
stops by itself after `lifetime_s` seconds, so a test that forgets it cannot hang.

What a request gets is decided, in this order:

1. A directive in the last message: `[[fault:KIND]]` always, `[[fault:KINDxN]]` for the first N requests
   carrying that exact message (then a normal reply), so a test controls each call.
2. The model name, when it is a fault kind (`"fail500"` and the like, as older tests use).
3. The random schedule: with probability `fault_rate` a fault drawn uniformly from `fault_mix`
   (seeded: the same seed gives the same schedule for the same request order).

Fault kinds: `429` (with `Retry-After: retry_after_s`), `500`, `503`, `truncated` (a 200 whose JSON body is
cut in half), `reset` (the connection is reset after the request is read), `stall` (headers and half a body,
then silence for `stall_s`), `badusage` (a normal reply whose `usage` block is nonsense), `nousage`,
`slow` (an extra `slow_s` of latency), `ok`; any other number is sent as that HTTP status with an error
body. Every reply waits `latency_s` first. `bill_completion_tokens=N` makes the server bill N completion
tokens per reply whatever the text (a reasoning model's hidden tokens), capped, as a provider does, by
the request's `max_tokens` or `max_completion_tokens`. `hold_until=N` holds every request until N are in
flight at once (at most `hold_max_s`), so a test of concurrency checks that the client sent N at once,
whatever the machine's speed, instead of racing a latency. `requests` and
`faults_served` count what happened (each request: model, content, fault,
Authorization header, arrival time); `max_in_flight` is the most requests it held at once.
"""

from __future__ import annotations

import asyncio
import collections
import json
import random
import re
import socket
import struct
import threading
import time
from collections.abc import Callable
from typing import Any

FAULT_KINDS = ("429", "500", "503", "truncated", "reset", "stall", "badusage")
_MODEL_FAULTS = {"fail500": "500", "fail503": "503", "rate429": "429", "garbage": "truncated", "reset": "reset",
                 "stall": "stall", "badusage": "badusage", "nousage": "nousage", "slow": "slow"}
_DIRECTIVE = re.compile(r"\[\[fault:([a-z]+|\d+)(?:x(\d+))?\]\]")
_REASONS = {200: "OK", 404: "Not Found", 429: "Too Many Requests", 500: "Internal Server Error",
            503: "Service Unavailable"}


def default_reply(body: dict[str, Any]) -> str:
    return "It is \\boxed{2}."


class ChatServer:
    """See the module docstring. Use as a context manager; `base_url` is the `/v1` endpoint."""

    def __init__(self, *, latency_s: float = 0.0, fault_rate: float = 0.0, fault_mix: tuple[str, ...] = FAULT_KINDS,
                 seed: int = 0, retry_after_s: float = 0.05, stall_s: float = 5.0, slow_s: float = 1.5,
                 max_requests: int = 1000, lifetime_s: float = 60.0,
                 reply_fn: Callable[[dict[str, Any]], str] = default_reply, bill_completion_tokens: int | None = None,
                 hold_until: int = 0, hold_max_s: float = 30.0):
        self.latency_s, self.fault_rate, self.fault_mix = latency_s, fault_rate, tuple(fault_mix)
        self.retry_after_s, self.stall_s, self.slow_s = retry_after_s, stall_s, slow_s
        self.max_requests, self.lifetime_s, self.reply_fn = max_requests, lifetime_s, reply_fn
        self.bill_completion_tokens = bill_completion_tokens
        self.hold_until, self.hold_max_s = hold_until, hold_max_s
        self._gathered: asyncio.Event | None = None
        self._random = random.Random(seed)
        self.requests: list[dict[str, Any]] = []  # {"model", "content", "fault", "auth"} per request
        self.faults_served: collections.Counter = collections.Counter()
        self.in_flight = self.max_in_flight = 0
        self._seen_directive: collections.Counter = collections.Counter()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    # ------------------------------------------------------------------------------------- lifecycle
    def start(self) -> ChatServer:
        self._thread = threading.Thread(target=self._run, name="chat-server", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the loopback chat server did not start")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None and not self._loop.is_closed():
            try:
                self._loop.call_soon_threadsafe(self._stop.set)
            except RuntimeError:  # the loop already closed by itself
                pass
        if self._thread is not None:
            self._thread.join(timeout=10)

    def __enter__(self) -> ChatServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        self._loop = asyncio.new_event_loop()
        try:
            self._loop.run_until_complete(self._serve())
        finally:
            self._loop.close()

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        self._gathered = asyncio.Event()
        server = await asyncio.start_server(self._connection, "127.0.0.1", 0, backlog=1024)
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        try:
            await asyncio.wait_for(self._stop.wait(), self.lifetime_s)
        except asyncio.TimeoutError:
            pass  # lifetime over: stop by ourselves
        server.close()
        for task in [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]:
            task.cancel()
        await asyncio.sleep(0)

    # ---------------------------------------------------------------------------------------- HTTP
    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                request = await _read_request(reader)
                if request is None:
                    break
                if len(self.requests) >= self.max_requests:  # bounded: refuse and hang up
                    break
                keep = await self._answer(request, writer)
                if not keep:
                    break
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass
        finally:
            try:
                writer.close()
            except Exception:  # noqa: BLE001 - closing a socket that is already gone
                pass

    async def _answer(self, request: tuple[str, dict[str, str], bytes], writer: asyncio.StreamWriter) -> bool:
        path, headers, raw = request
        try:
            body = json.loads(raw)
            content = str(body["messages"][-1]["content"])
            model = str(body["model"])
        except (ValueError, KeyError, IndexError, TypeError):
            await _send(writer, 400, b'{"error": {"message": "bad request"}}')
            return True
        fault = self._choose_fault(model, content)
        self.requests.append({"model": model, "content": content, "fault": fault, "auth": headers.get("authorization"),
                              "t": time.monotonic()})
        if fault != "ok":
            self.faults_served[fault] += 1
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        if self.hold_until:
            if self.in_flight >= self.hold_until:
                self._gathered.set()
            try:
                await asyncio.wait_for(self._gathered.wait(), self.hold_max_s)
            except asyncio.TimeoutError:
                pass  # never gathered: answer anyway, and max_in_flight tells the test
        try:
            await asyncio.sleep(self.latency_s + (self.slow_s if fault == "slow" else 0.0))
            if fault == "401":  # as real APIs do: the error message quotes the key it refused
                key = (headers.get("authorization") or "").replace("Bearer ", "")
                message = json.dumps(
                    {"error": {"message": f"Incorrect API key provided: {key}", "type": "invalid_request_error"}}
                )
                await _send(writer, 401, message.encode())
                return True
            return await self._respond(fault, body, writer)
        finally:
            self.in_flight -= 1

    def _choose_fault(self, model: str, content: str) -> str:
        match = _DIRECTIVE.search(content)
        if match:
            kind, times = match.group(1), match.group(2)
            if times is None:
                return kind
            self._seen_directive[content] += 1
            return kind if self._seen_directive[content] <= int(times) else "ok"
        if model in _MODEL_FAULTS:
            return _MODEL_FAULTS[model]
        if self.fault_rate and self._random.random() < self.fault_rate:
            return self._random.choice(self.fault_mix)
        return "ok"

    async def _respond(self, fault: str, body: dict[str, Any], writer: asyncio.StreamWriter) -> bool:
        if fault == "429":
            headers = {"Retry-After": f"{self.retry_after_s:g}"}
            await _send(writer, 429, b'{"error": {"message": "rate limited", "type": "rate_limit"}}', headers)
            return True
        if fault.isdigit():  # 500, 503, or any other status a test asks for
            await _send(writer, int(fault), b'{"error": {"message": "injected failure", "type": "server_error"}}')
            return True
        if fault == "reset":
            _reset(writer)
            return False
        payload = json.dumps(self._completion(body, fault)).encode()
        if fault == "truncated":
            await _send(writer, 200, payload[: len(payload) // 2])
            return True
        if fault == "stall":
            await _send(writer, 200, payload[: len(payload) // 2], length=len(payload))
            await asyncio.sleep(self.stall_s)
            return False
        await _send(writer, 200, payload)
        return True

    def _completion(self, body: dict[str, Any], fault: str) -> dict[str, Any]:
        text = self.reply_fn(body)  # any JSON value: a test may send content that is not a string
        completion = len(text) // 4 + 1 if isinstance(text, str) else 1
        if self.bill_completion_tokens is not None:
            cap = body.get("max_completion_tokens", body.get("max_tokens"))
            completion = min(self.bill_completion_tokens, cap) if isinstance(cap, int) else self.bill_completion_tokens
        prompt = sum(len(str(m.get("content", ""))) for m in body["messages"]) // 4 + 8
        reply: dict[str, Any] = {
            "id": f"chatcmpl-{len(self.requests)}", "object": "chat.completion", "created": int(time.time()),
            "model": body["model"],
            "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}],
            "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion},
        }
        if fault == "badusage":
            reply["usage"] = {"prompt_tokens": -7, "completion_tokens": "lots", "total_tokens": None}
        if fault == "nousage":
            del reply["usage"]
        return reply


async def _read_request(reader: asyncio.StreamReader) -> tuple[str, dict[str, str], bytes] | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
        return None
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            key, value = line.split(":", 1)
            headers[key.strip().lower()] = value.strip()
    raw = await reader.readexactly(int(headers.get("content-length", "0")))
    return (parts[1] if len(parts) > 1 else "/"), headers, raw


async def _send(writer: asyncio.StreamWriter, status: int, payload: bytes, headers: dict[str, str] | None = None,
                length: int | None = None) -> None:
    lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}", "Content-Type: application/json",
             f"Content-Length: {len(payload) if length is None else length}"]
    lines += [f"{key}: {value}" for key, value in (headers or {}).items()]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + payload)
    await writer.drain()


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with RST instead of FIN (SO_LINGER 0): the client sees a connection reset."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class ServerProcess:
    """A `ChatServer` in a child interpreter (`python -m corl_gym.experts.fake_server`), so its work does
    not share the client's interpreter lock (benchmarks). Keyword arguments are `ChatServer`'s, minus
    `reply_fn`. The child stops when its stdin closes; after `__exit__`, `stats` holds its request count
    and the faults it served."""

    def __init__(self, **kwargs: Any):
        self.kwargs, self.port, self.stats = kwargs, 0, {}
        self._process: Any = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def __enter__(self) -> ServerProcess:
        import subprocess
        import sys

        self._process = subprocess.Popen(
            [sys.executable, "-m", "corl_gym.experts.fake_server", json.dumps(self.kwargs)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        line = self._process.stdout.readline()
        if not line.strip().isdigit():
            self._process.kill()
            raise RuntimeError(f"the loopback chat server process did not start: {line!r}")
        self.port = int(line)
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            out, _ = self._process.communicate(input="", timeout=20)
            self.stats = json.loads(out.strip().splitlines()[-1]) if out.strip() else {}
        except Exception:  # noqa: BLE001 - a child that will not stop is killed
            self._process.kill()
            self._process.wait()


def _child_main(config: str) -> None:
    import sys

    with ChatServer(**json.loads(config)) as server:
        print(server.port, flush=True)
        sys.stdin.read()  # until the parent closes our stdin (or dies)
    print(json.dumps({"requests": len(server.requests), "faults": dict(server.faults_served)}), flush=True)


if __name__ == "__main__":
    import sys

    _child_main(sys.argv[1])

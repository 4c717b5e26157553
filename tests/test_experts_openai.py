"""Backend `openai` against a real HTTP server on loopback speaking the chat-completions protocol.

The server (stdlib `http.server` in a thread, ephemeral port) picks its behaviour from the request's
model name: `ok` (a reply with usage), `fail500`, `slow` (stalls until the test releases it), `garbage`
(a 200 with a body that is not JSON), `nousage`. It serves a bounded number of requests and stops.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from corl_gym.data import Problem
from corl_gym.experts import ExpertSpec
from corl_gym.experts.openai_backend import OpenAIExpert

SECRET = "sk-test-0123456789abcdefSECRET"
PROBLEM = Problem(id="t-0", problem="What is 1+1?", answer="2", level=1)
MAX_REQUESTS = 40


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):  # keep pytest output clean
        pass

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.seen.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
        model = body["model"]
        if model == "fail500":
            return self._send(500, b'{"error": {"message": "boom", "type": "server_error"}}')
        if model == "garbage":
            return self._send(200, b"{this is not json")
        if model == "slow":  # stalls until the test lets it go: only the client's own timeout can end the call
            self.server.release.wait(30)
        reply = {
            "id": "c1", "object": "chat.completion", "created": 0, "model": model,
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": "It is \\boxed{2}."}}],
        }
        if model != "nousage":
            reply["usage"] = {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}
        self._send(200, json.dumps(reply).encode())

    def _send(self, status: int, payload: bytes) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):  # the client timed out and left
            pass


@pytest.fixture()
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    httpd.seen = []

    def serve() -> None:  # bounded: stops after MAX_REQUESTS or 30 s, whichever first
        deadline = time.monotonic() + 30
        httpd.timeout = 0.2
        while len(httpd.seen) < MAX_REQUESTS and time.monotonic() < deadline and not httpd.stop:
            httpd.handle_request()

    httpd.stop = False
    httpd.release = threading.Event()
    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield httpd
    httpd.release.set()
    httpd.stop = True
    thread.join(timeout=5)
    httpd.server_close()


def _expert(server, model: str, monkeypatch, **options) -> OpenAIExpert:
    monkeypatch.setenv("CORL_TEST_KEY", SECRET)
    base = {"base_url": f"http://127.0.0.1:{server.server_port}/v1", "api_key_env": "CORL_TEST_KEY",
            "timeout": 5, "max_retries": 0}
    spec = ExpertSpec(name=model, backend="openai", model=model, price_in=2.0, price_out=8.0,
                      options={**base, **options})
    return OpenAIExpert(spec)


def test_normal_reply_usage_and_cost(server, monkeypatch):
    expert = _expert(server, "ok", monkeypatch, max_tokens=64, temperature=0.5)
    reply = expert.call("What is 1+1?", PROBLEM)
    assert reply.ok and reply.text == "It is \\boxed{2}."
    assert (reply.prompt_tokens, reply.completion_tokens) == (11, 7)
    assert reply.cost_usd == pytest.approx((11 * 2.0 + 7 * 8.0) / 1e6)
    request = server.seen[-1]
    assert request["path"] == "/v1/chat/completions"
    assert request["auth"] == f"Bearer {SECRET}"
    assert request["body"]["max_tokens"] == 64 and request["body"]["temperature"] == 0.5
    assert request["body"]["messages"] == [{"role": "user", "content": "What is 1+1?"}]


def test_reasoning_model_params(server, monkeypatch):
    expert = _expert(server, "ok", monkeypatch, max_tokens=99, max_tokens_param="max_completion_tokens",
                     temperature=None, system_prompt="Be brief.")
    assert expert.call("q", PROBLEM).ok
    body = server.seen[-1]["body"]
    assert body["max_completion_tokens"] == 99 and "temperature" not in body and "max_tokens" not in body
    assert body["messages"][0] == {"role": "system", "content": "Be brief."}


def test_http_500_is_an_error_reply(server, monkeypatch):
    reply = _expert(server, "fail500", monkeypatch).call("q", PROBLEM)
    assert not reply.ok and "500" in reply.error and reply.cost_usd == 0.0
    assert SECRET not in reply.error


def test_timeout_is_an_error_reply(server, monkeypatch):
    reply = _expert(server, "slow", monkeypatch, timeout=0.3).call("q", PROBLEM)
    # the server answers only once the test ends (or after 30 s, with a good reply): the client's timeout ended it
    assert not reply.ok and "Timeout" in reply.error


def test_garbage_body_is_an_error_reply(server, monkeypatch):
    reply = _expert(server, "garbage", monkeypatch).call("q", PROBLEM)
    assert not reply.ok and reply.text == ""


def test_missing_usage_is_estimated(server, monkeypatch):
    reply = _expert(server, "nousage", monkeypatch).call("What is 1+1?", PROBLEM)
    assert reply.ok and reply.prompt_tokens > 0 and reply.completion_tokens > 0


def test_concurrent_batch_on_one_loop(server, monkeypatch):
    expert = _expert(server, "ok", monkeypatch, concurrency=4)
    replies = asyncio.run(expert.acall_batch([(f"q{i}", PROBLEM) for i in range(8)]))
    assert all(r.ok for r in replies) and len(replies) == 8
    assert expert.call("again", PROBLEM).ok  # a fresh event loop gets its own client


def test_missing_key_names_the_variable(monkeypatch):
    monkeypatch.delenv("CORL_TEST_MISSING_KEY", raising=False)
    spec = ExpertSpec(name="x", backend="openai", model="m", options={"api_key_env": "CORL_TEST_MISSING_KEY"})
    with pytest.raises(ValueError, match="CORL_TEST_MISSING_KEY"):
        OpenAIExpert(spec)


def test_key_never_in_repr(server, monkeypatch):
    expert = _expert(server, "ok", monkeypatch)
    assert SECRET not in repr(expert) and SECRET not in repr(expert.spec)


def test_scrub_removes_key_shapes(server, monkeypatch):
    expert = _expert(server, "ok", monkeypatch)
    message = expert._scrub(RuntimeError(f"bad key {SECRET} and sk-proj-abcdEFGH1234****wxyz"))
    assert SECRET not in message and "abcdEFGH1234" not in message


@pytest.fixture()
def http_debug_log(caplog):
    """Every record of the HTTP stack at DEBUG (openai, httpx, httpcore), as a user debugging a run sees it."""
    import logging

    names = ("openai", "httpx", "httpcore", "httpcore2")
    levels = {name: logging.getLogger(name).level for name in names}
    for name in names:
        logging.getLogger(name).setLevel(logging.DEBUG)
    caplog.set_level(logging.DEBUG)
    yield caplog
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)


@pytest.mark.parametrize("pasted", [SECRET + "\n", f"  {SECRET} ", f"\t{SECRET}\r\n"])
def test_a_key_with_surrounding_whitespace_works_and_stays_out_of_the_debug_log(server, monkeypatch, http_debug_log,
                                                                                pasted):
    expert = _expert(server, "ok", monkeypatch)
    monkeypatch.setenv("CORL_TEST_KEY", pasted)
    expert = OpenAIExpert(expert.spec)
    reply = expert.call("What is 1+1?", PROBLEM)
    assert reply.ok and server.seen[-1]["auth"] == f"Bearer {SECRET}"
    assert http_debug_log.records and SECRET not in http_debug_log.text
    expert.close()


@pytest.mark.parametrize("bad", [f"{SECRET[:10]}\n{SECRET[10:]}", f"{SECRET}\x7f", f"{SECRET}\x1b[0m", f"{SECRET}é"])
def test_a_key_with_control_characters_is_refused_without_quoting_it(server, monkeypatch, bad):
    expert = _expert(server, "ok", monkeypatch)
    monkeypatch.setenv("CORL_TEST_KEY", bad)
    with pytest.raises(ValueError, match="CORL_TEST_KEY has control or non-ASCII characters") as error:
        OpenAIExpert(expert.spec)
    assert SECRET[:10] not in str(error.value) and SECRET[10:] not in str(error.value)

"""A private event loop in a daemon thread, for blocking entry points of async code.

`Pool.call_many` and `OpenAIExpert.call` run their coroutines here instead of in a fresh `asyncio.run`
loop per call: clients, their kept-alive connections and per-loop semaphores then live across calls
(a vector env's steps, an env's sequential calls), and the caller may itself be inside a running loop.
"""

from __future__ import annotations

import asyncio
import os
import threading
from typing import Any


class LoopThread:
    """An event loop running in a daemon thread; `run` submits a coroutine and waits for its result."""

    def __init__(self, name: str = "corl-experts-loop") -> None:
        self.pid = os.getpid()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self.thread.start()

    def alive(self) -> bool:
        return self.pid == os.getpid() and self.thread.is_alive()  # a forked child has no such thread

    def run(self, coroutine: Any) -> Any:
        if threading.current_thread() is self.thread:
            raise RuntimeError("LoopThread.run called from its own loop: await the coroutine instead")
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result()

    def stop(self) -> None:
        if self.alive():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(timeout=5)
            if not self.thread.is_alive():
                self.loop.close()


def ensure(runner: LoopThread | None, name: str) -> LoopThread:
    """`runner` if it is usable in this process, else a new one."""
    return runner if runner is not None and runner.alive() else LoopThread(name)

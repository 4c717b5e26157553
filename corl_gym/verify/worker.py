"""Killable verifier workers: the hard deadline of `corl_gym.verify`.

A sympy computation cannot be interrupted from Python (signals only reach the main thread, and a
thread cannot be killed), so the slow path runs in separate processes. Each worker is a plain
`python -m corl_gym.verify.worker` child talking one JSON line per job over its pipes; a worker
that misses its deadline is SIGKILLed, reaped (no zombie) and replaced in the background. This module
is both ends of that pipe: the pool below runs in the caller, `_serve` (the `__main__` entry) in the
child.

Why a subprocess and not `multiprocessing`: `spawn`/`forkserver` re-import the caller's `__main__`
(a user script without a main guard would run twice), and `fork` is unsafe once threads exist.

Decisions: the deadline is charged from the moment the job is handed to a ready worker; the one-off
start-up of a worker (about half a second, sympy import) is not charged to any answer. The pool keeps
one spare worker, so after a kill the next call does not wait for a fresh start. Waiting is done with
`poll` on the pipes from whatever thread calls: no helper threads, so nothing is left running.
Workers die with their parent (stdin EOF, or a parent-pid watchdog when stuck in a computation) and
are killed at interpreter exit. Each worker's address space is capped (CORL_VERIFY_MEMORY_MB,
default 4096): a computation that runs out of memory dies and its pair is a TIMEOUT. POSIX only.
"""

from __future__ import annotations

import atexit
import json
import os
import select
import subprocess
import sys
import threading
import time
from pathlib import Path

STARTUP_TIMEOUT = 60.0
MEMORY_LIMIT_BYTES = int(os.environ.get("CORL_VERIFY_MEMORY_MB", "4096")) * 2**20


#: The module the child runs with `python -m`: found by import, so it works from a checkout and a wheel.
WORKER_MODULE = "corl_gym.verify.worker"


def _import_root() -> str:
    """The folder that holds the `corl_gym` package this process imported (a checkout, site-packages...)."""
    return str(Path(__file__).resolve().parents[2])


class _Worker:
    def __init__(self) -> None:
        # The caller may have found corl_gym through a path the child would not search (a script's
        # folder, an edited sys.path): put that folder first so both sides run the same code.
        root = _import_root()
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", WORKER_MODULE], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, close_fds=True,
            start_new_session=True,  # a Ctrl-C in the terminal is the parent's business, not the worker's
        )
        self.fd = self.proc.stdout.fileno()
        self.buffer = b""
        self.ready = False
        self.started = time.monotonic()

    def poll_line(self) -> str | None:
        """Read what is available without blocking; return one complete line if there is one."""
        if b"\n" not in self.buffer:
            chunk = os.read(self.fd, 1 << 16)
            if not chunk:
                raise EOFError("worker exited")
            self.buffer += chunk
        if b"\n" not in self.buffer:
            return None
        line, self.buffer = self.buffer.split(b"\n", 1)
        return line.decode()

    def send(self, job: dict) -> None:
        self.proc.stdin.write((json.dumps(job) + "\n").encode())
        self.proc.stdin.flush()

    def kill(self) -> None:
        try:
            self.proc.kill()
        except OSError:
            pass
        self.proc.wait()  # reap: no zombie
        for pipe in (self.proc.stdin, self.proc.stdout):
            try:
                pipe.close()
            except OSError:
                pass


class WorkerPool:
    """Up to `max_workers` persistent workers shared by all threads of this process."""

    def __init__(self, max_workers: int, spare: int = 1) -> None:
        self.max_workers, self.spare = max(1, max_workers), spare
        self.idle: list[_Worker] = []
        self.total = 0
        self.cond = threading.Condition()
        self.owner = os.getpid()

    def _start(self) -> _Worker:
        worker = _Worker()
        self.total += 1
        return worker

    def _take(self, want: int) -> list[_Worker]:
        """Idle workers (ready ones first) plus new ones, blocking only until at least one exists."""
        with self.cond:
            while True:
                self.idle.sort(key=lambda w: not w.ready)
                taken = [self.idle.pop(0) for _ in range(min(want, len(self.idle)))]
                while len(taken) < want and self.total < self.max_workers:
                    taken.append(self._start())
                if taken:
                    while len(self.idle) < self.spare and self.total < self.max_workers:
                        self.idle.append(self._start())
                    return taken
                self.cond.wait(1.0)

    def _give_back(self, worker: _Worker) -> None:
        with self.cond:
            self.idle.append(worker)
            self.cond.notify()

    def _discard(self, worker: _Worker) -> None:
        worker.kill()
        with self.cond:
            self.total -= 1
            if len(self.idle) < self.spare:
                self.idle.append(self._start())
            self.cond.notify()

    def run(self, jobs: list[tuple[str, str]], timeout: float) -> list[str]:
        """Verdict names for (pred, gold) jobs; each gets `timeout` seconds of worker time."""
        batch = _Batch(self, jobs, timeout)
        try:
            batch.run()
        finally:
            for worker, _, _ in batch.active.values():  # only left over if something raised
                self._discard(worker)
        return [r or "TIMEOUT" for r in batch.results]

    def warm_up(self, count: int) -> None:
        with self.cond:
            while self.total < min(count, self.max_workers):
                self.idle.append(self._start())

    def close(self) -> None:
        with self.cond:
            workers, self.idle = self.idle, []
            self.total -= len(workers)
        for worker in workers:
            worker.kill()


def _wait_readable(fds: list[int], timeout: float) -> list[int]:
    """File descriptors ready to read; `poll` because `select` fails on descriptors above 1023."""
    timeout = max(0.0, timeout)
    if not hasattr(select, "poll"):
        return select.select(fds, [], [], timeout)[0]
    poller = select.poll()
    for fd in fds:
        poller.register(fd, select.POLLIN | select.POLLHUP | select.POLLERR)
    return [fd for fd, _ in poller.poll(timeout * 1000)]


class _Batch:
    """One `run` call: jobs handed to workers as they become free, each with its own deadline."""

    MAX_START_FAILURES = 3

    def __init__(self, pool: WorkerPool, jobs: list[tuple[str, str]], timeout: float) -> None:
        self.pool, self.jobs, self.timeout = pool, jobs, timeout
        self.results: list[str | None] = [None] * len(jobs)
        self.pending = list(range(len(jobs)))[::-1]
        self.active: dict[int, list] = {}  # fd -> [worker, job index or None while starting, deadline]
        self.start_failures = 0

    def run(self) -> None:
        for worker in self.pool._take(len(self.jobs)):
            self._assign(worker)
        while self.pending or any(entry[1] is not None for entry in self.active.values()):
            if not self.active:  # every worker we had timed out or died: get another
                if self.start_failures >= self.MAX_START_FAILURES:
                    return  # workers cannot start here; the rest stay TIMEOUT
                for worker in self.pool._take(1):
                    self._assign(worker)
                continue
            wait = min(entry[2] for entry in self.active.values()) - time.monotonic()
            for fd in _wait_readable(list(self.active), wait):
                self._on_readable(fd)
            now = time.monotonic()
            for fd in [fd for fd, entry in self.active.items() if entry[2] <= now]:
                self._fail(fd)
        for worker, _, _ in self.active.values():  # still starting and no job left: keep for later
            self.pool._give_back(worker)
        self.active.clear()

    def _assign(self, worker: _Worker) -> None:
        if not worker.ready:
            self.active[worker.fd] = [worker, None, worker.started + STARTUP_TIMEOUT]
        elif self.pending:
            index = self.pending.pop()
            pred, gold = self.jobs[index]
            self.active[worker.fd] = [worker, index, time.monotonic() + self.timeout]
            try:
                worker.send({"id": index, "pred": pred, "gold": gold})
            except OSError:
                self._fail(worker.fd)
        else:
            self.pool._give_back(worker)

    def _fail(self, fd: int) -> None:
        """A worker missed its deadline, died or spoke nonsense: its job is a TIMEOUT, it is replaced."""
        worker, index, _ = self.active.pop(fd)
        if index is None:
            self.start_failures += 1
        else:
            self.results[index] = "TIMEOUT"
        self.pool._discard(worker)

    def _on_readable(self, fd: int) -> None:
        worker, index, _ = self.active[fd]
        try:
            line = worker.poll_line()
            if line is None:
                return
            verdict = None if index is None else json.loads(line)["verdict"]
        except (EOFError, OSError, ValueError, KeyError, TypeError):  # crashed, e.g. out of memory
            self._fail(fd)
            return
        del self.active[fd]
        if index is None:
            worker.ready = line == "ready"
        else:
            self.results[index] = verdict
        self._assign(worker)


_pool: WorkerPool | None = None
_pool_lock = threading.Lock()


def get_pool() -> WorkerPool:
    """The process-wide pool (a forked child gets its own, never touching the parent's workers)."""
    global _pool
    with _pool_lock:
        if _pool is None or _pool.owner != os.getpid():
            _pool = WorkerPool(max_workers=max(2, os.cpu_count() or 2))
        return _pool


@atexit.register
def shutdown() -> None:
    """Kill and reap every idle worker (busy ones are killed by their caller's deadline)."""
    if _pool is not None and _pool.owner == os.getpid():
        _pool.close()


# --- the worker side ----------------------------------------------------------------------------


def _watch_parent(parent: int) -> None:
    while True:
        time.sleep(0.5)
        if os.getppid() != parent:
            os._exit(0)


def _serve() -> None:
    import signal

    # Answers go out on a private copy of stdout; anything a library prints lands in stderr instead
    # of corrupting the protocol.
    out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT_BYTES, MEMORY_LIMIT_BYTES))
    except (ImportError, ValueError, OSError):
        pass
    threading.Thread(target=_watch_parent, args=(os.getppid(),), daemon=True).start()
    from corl_gym.verify.symbolic import _math_verify, symbolic_verdict

    # Pay sympy's and math-verify's lazy imports and caches now, not in the first job's deadline.
    for pred, gold in (("2\\sqrt{2}", "\\sqrt{8}"), ("(x+1)^2", "x^2+2x+1"), ("2x - y + 4 = 0", "y = 2x + 3"),
                       ("\\frac{\\cos x}{\\sin x}", "\\cot x"), ("\\sin x", "\\cos x")):
        symbolic_verdict(pred, gold)
    _math_verify("\\frac{\\pi}{2}", "\\frac{\\pi}{2}")

    out.write("ready\n")
    out.flush()
    for line in sys.stdin:
        job = json.loads(line)
        try:
            verdict = symbolic_verdict(job["pred"], job["gold"])
        except MemoryError:
            verdict = "TIMEOUT"
        except Exception:
            verdict = "UNPARSEABLE"
        out.write(json.dumps({"id": job["id"], "verdict": verdict}) + "\n")
        out.flush()


if __name__ == "__main__":
    _serve()

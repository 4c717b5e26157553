"""A clean stop on Ctrl-C (SIGINT) and SIGTERM for long runs (`corl-gym bench`, `corl-gym record`).

Inside `stop_on_signals()` (main thread only) either signal raises `Interrupted` where the run is. It is
a BaseException, like KeyboardInterrupt, so no `except Exception` swallows it, and the run's `finally`
blocks do the rest: rows are on disk already (written one by one), pools are closed and the ledger file
is written. Further signals are ignored until the context ends, so a second Ctrl-C cannot cut that
short. The command line then prints one line saying how to resume (`resume_line`) and exits with
128 + the signal number (130 for SIGINT, 143 for SIGTERM), without a traceback. Calls in flight when the
signal came are abandoned: their rows are made again on resume (the ledger keeps what they cost).
"""

from __future__ import annotations

import contextlib
import shlex
import signal
import threading
from collections.abc import Iterator, Sequence

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(BaseException):
    """A run stopped by a signal; `exit_code` is the shell's convention, 128 + the signal number."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum
        self.exit_code = 128 + signum
        self.name = signal.Signals(signum).name


@contextlib.contextmanager
def stop_on_signals() -> Iterator[None]:
    """Turn SIGINT and SIGTERM into `Interrupted` while the block runs (a no-op off the main thread)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {signum: signal.getsignal(signum) for signum in SIGNALS}

    def handler(signum: int, frame: object) -> None:
        for other in SIGNALS:  # the first signal stops the run; the clean-up must not be cut short
            signal.signal(other, signal.SIG_IGN)
        raise Interrupted(signum)

    for signum in SIGNALS:
        signal.signal(signum, handler)
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


def resume_line(prog: str, argv: Sequence[str], interrupted: Interrupted, kept: str) -> str:
    """The one line printed after an interrupted run: what was kept, and the command that resumes it."""
    return (f"{prog}: interrupted by {interrupted.name}; {kept}. Resume with: "
            f"{prog} {shlex.join(list(argv))}")

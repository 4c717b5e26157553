"""The output files of long runs (`corl-gym bench`, `corl-gym record`): one writer at a time, and rows that
resume exactly.

- `WriterLock(path)`: an exclusive OS lock (`fcntl.flock`) on the file `path`, held for the whole run.
  The OS drops it when the process ends, however it ends (kill -9 included), so a lock is never stale.
  A second run on the same output fails at once with `OutputBusy` (a ValueError, so the command line
  prints it as one line), naming the pid that holds it.
- `resume_rows(path, key_fields)`: the rows of a JSONL file written by an earlier run. A last line with no
  newline was cut short by a run that died mid-write: it is cut off the file, and a warning says so,
  before anything is appended. Any other line that is not a JSON object is an error naming the file and
  line (guessing would lose or invent results). A row whose key repeats an earlier row's is dropped with a
  warning (two runs that once wrote to one output), so nothing is counted twice.
- `RowWriter(path)`: appends rows, one JSON line each, flushed as each is written, so a run killed at any
  point loses at most the rows it had not finished.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

_LOG = logging.getLogger(__name__)


class OutputBusy(ValueError):
    """Another process is writing the same output."""


class WriterLock:
    """See the module docstring. Use as a context manager."""

    def __init__(self, path: str | Path, what: str):
        self.path, self.what = Path(path), what
        self._fd: int | None = None

    def __enter__(self) -> WriterLock:
        import fcntl  # POSIX: bench and record run where the OS can lock a file

        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.read(fd, 64).decode("ascii", "replace").strip() or "unknown"
            os.close(fd)
            raise OutputBusy(f"{self.what} is being written by another run (pid {holder}); wait for it to end or "
                             f"write elsewhere: two writers would pay for and record every result twice") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor releases the lock
            self._fd = None


def resume_rows(path: str | Path, key_fields: Sequence[str]) -> list[dict[str, Any]]:
    """The rows already in `path` (none when it does not exist); see the module docstring."""
    path = Path(path)
    if not path.is_file():
        return []
    data = path.read_bytes()
    complete = data.rfind(b"\n") + 1
    if complete < len(data):
        _LOG.warning("%s: cut off a partial last line (%d bytes) left by a run that stopped mid-write; that "
                     "result will be made again", path, len(data) - complete)
        with open(path, "r+b") as handle:
            handle.truncate(complete)
    rows, seen = [], set()
    for number, line in enumerate(data[:complete].decode("utf-8", "replace").splitlines(), 1):
        if not line.strip():
            continue
        row = _row(line, key_fields, f"{path}, line {number}")
        key = tuple(str(row[k]) for k in key_fields)
        if key in seen:
            _LOG.warning("%s, line %d: a second row for %s; dropped (the first is kept)", path, number,
                         ", ".join(f"{k}={row[k]!r:.60}" for k in key_fields))
            continue
        seen.add(key)
        rows.append(row)
    return rows


def _row(line: str, key_fields: Sequence[str], where: str) -> dict[str, Any]:
    try:
        row = json.loads(line)
    except ValueError as exc:
        raise ValueError(f"{where}: not valid JSON ({exc}); repair or delete that line, then rerun") from exc
    if not isinstance(row, dict):
        raise ValueError(f"{where}: a row must be a JSON object, got {type(row).__name__}; repair or delete that "
                         "line, then rerun")
    missing = [k for k in key_fields if k not in row]
    if missing:
        raise ValueError(f"{where}: a row without {', '.join(missing)}; repair or delete that line, then rerun")
    return row


class RowWriter:
    """See the module docstring. Use as a context manager."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "a", encoding="utf-8")

    def write(self, row: dict[str, Any]) -> None:
        self._file.write(json.dumps(row) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> RowWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

"""The expert cache: a real SQLite file (WAL) of successful expert replies.

Key: SHA-256 of the canonical JSON of the expert's name, its model, the messages sent, the sampling
parameters and the seed (`Expert.cache_request`); backends that answer per problem for free (sim,
replay) are never cached. Only successful replies are stored: a failure is transient by nature.

Modes (`MODES`):

- `off`: no cache.
- `read-write`: a hit is served from the file; a miss is a live call whose reply is stored.
- `replay-only`: a hit is served; a miss makes no call and returns an error reply naming the key
  (`error_kind="cache_miss"`), so a run proves it needs no network.
- `record`: every call is live and its reply overwrites the stored one (refreshes a cache).

A hit is marked `cached=True` and carries the original call's tokens and `cost_usd`, so the episode is
charged what the call cost (rewards do not change when a cache is warm) while the run's ledger counts $0.

Several processes may read and write one file at once: WAL lets readers run beside the one writer,
`busy_timeout` makes a writer wait for the lock instead of failing, and each write is one autocommit
`INSERT OR REPLACE` of a whole row. A connection belongs to one process and thread (sqlite3 objects
must not cross a fork or a thread), so connections are opened per (pid, thread).

Bad files: a row whose fields have the wrong types (SQLite's type affinity lets a REAL or INTEGER column
hold text) is treated as a miss, with a warning, and a read-write run stores a fresh reply over it; a
file that is not an SQLite cache fails when the pool loads, with an error naming the file.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from corl_gym.experts.base import ExpertReply

MODES = ("off", "read-write", "replay-only", "record")
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS replies (\n"
    "    key TEXT PRIMARY KEY, expert TEXT NOT NULL, model TEXT NOT NULL, request TEXT NOT NULL, text TEXT NOT NULL,\n"
    "    prompt_tokens INTEGER NOT NULL, completion_tokens INTEGER NOT NULL, cost_usd REAL NOT NULL, "
    "created REAL NOT NULL)"
)


_COLUMNS = ("key", "expert", "model", "request", "text", "prompt_tokens", "completion_tokens", "cost_usd", "created")
_LOG = logging.getLogger(__name__)


def _row_problem(row: tuple[Any, ...]) -> str | None:
    """Why a (text, prompt_tokens, completion_tokens, cost_usd) row is not a valid reply, or None."""
    text, prompt, completion, cost = row
    if not isinstance(text, str):
        return f"text is a {type(text).__name__}"
    for label, count in (("prompt_tokens", prompt), ("completion_tokens", completion)):
        if not isinstance(count, int) or count < 0:
            return f"{label} is {count!r}, not a count"
    if not isinstance(cost, (int, float)) or not math.isfinite(cost) or cost < 0:
        return f"cost_usd is {cost!r}, not a USD amount"
    return None


@dataclass(frozen=True)
class CacheConfig:
    """Where the cache file is and how it is used; `mode` is one of `MODES`. As a run's override,
    `path=None` keeps each entry's own file."""

    path: str | None
    mode: str = "read-write"

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"unknown cache mode {self.mode!r}; valid modes: {', '.join(MODES)}")

    @property
    def active(self) -> bool:
        return self.mode != "off"


def cache_key(expert: str, request: dict[str, Any]) -> str:
    canonical = json.dumps({"expert": expert, **request}, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


class ExpertCache:
    """One SQLite cache file; see the module docstring. Use `open_cache` to share one per path."""

    def __init__(self, path: str | Path, timeout_s: float = 60.0):
        self.path = Path(path).expanduser().resolve()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.timeout_s = timeout_s
        self._local = threading.local()
        self._connection()  # create the file and table now, so errors show at load time

    def _connection(self) -> sqlite3.Connection:
        owner = (os.getpid(), threading.get_ident())
        if getattr(self._local, "owner", None) != owner:
            try:
                connection = sqlite3.connect(str(self.path), timeout=self.timeout_s, isolation_level=None)
                connection.execute(f"PRAGMA busy_timeout = {int(self.timeout_s * 1000)}")
                if connection.execute("PRAGMA journal_mode = WAL").fetchone()[0].lower() != "wal":
                    raise RuntimeError(f"{self.path}: SQLite refused WAL mode (a network filesystem?)")
                connection.execute("PRAGMA synchronous = NORMAL")
                connection.execute(_SCHEMA)
                connection.execute(f"SELECT {', '.join(_COLUMNS)} FROM replies LIMIT 0")  # the columns we use
            except sqlite3.DatabaseError as exc:  # not SQLite, a damaged file, another program's table
                raise ValueError(
                    f"expert cache {self.path} is not a usable cache file (SQLite: {exc}); delete it to start an "
                    f"empty cache, or point the cache elsewhere (`cache: {{path: ...}}` in the pool file, --cache)"
                ) from exc
            self._local.connection, self._local.owner = connection, owner
        return self._local.connection

    def get(self, key: str) -> ExpertReply | None:
        """The stored reply for `key`, or None. A row that is not a valid reply (a field of the wrong type:
        SQLite lets any column hold text) or a read that fails is a miss, with a warning."""
        try:
            row = self._connection().execute(
                "SELECT text, prompt_tokens, completion_tokens, cost_usd FROM replies WHERE key = ?", (key,)
            ).fetchone()
        except (sqlite3.Error, ValueError) as exc:  # ValueError: a new thread's connection failed to open
            _LOG.warning("expert cache %s: could not read key %s (%s: %s); treated as a miss", self.path, key,
                         type(exc).__name__, exc)
            return None
        if row is None:
            return None
        problem = _row_problem(row)
        if problem is not None:
            _LOG.warning("expert cache %s: the row for key %s is not a valid reply (%s); treated as a miss (a "
                         "read-write or record run stores a fresh reply over it)", self.path, key, problem)
            return None
        return ExpertReply(text=row[0], prompt_tokens=row[1], completion_tokens=row[2], cost_usd=float(row[3]),
                           cached=True, attempts=0)

    def put(self, key: str, expert: str, request: dict[str, Any], reply: ExpertReply) -> None:
        self._connection().execute(
            "INSERT OR REPLACE INTO replies VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (key, expert, str(request.get("model", "")), json.dumps(request, sort_keys=True, default=str), reply.text,
             int(reply.prompt_tokens), int(reply.completion_tokens), float(reply.cost_usd), time.time()),
        )

    def __len__(self) -> int:
        return int(self._connection().execute("SELECT COUNT(*) FROM replies").fetchone()[0])

    def __repr__(self) -> str:
        return f"ExpertCache({str(self.path)!r})"


_OPEN: dict[str, ExpertCache] = {}
_OPEN_LOCK = threading.Lock()


def open_cache(path: str | Path) -> ExpertCache:
    """The process's `ExpertCache` for `path` (experts of a pool that share a file share the object)."""
    resolved = str(Path(path).expanduser().resolve())
    with _OPEN_LOCK:
        if resolved not in _OPEN:
            _OPEN[resolved] = ExpertCache(resolved)
        return _OPEN[resolved]

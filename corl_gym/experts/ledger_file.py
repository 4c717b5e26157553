"""The ledger's accounts and its files: the totals file a run writes and the journal that survives kill -9.

The journal (`<ledger file>.journal`, e.g. `ledger.json.journal`) is JSON lines, appended and flushed
one per event while a run is live. Its first line holds the totals the run began from (`experts`,
`runs`); then `{"reserve": id, "expert": name, "usd": x}` before a live call is sent,
`{"release": id}` for a call never sent, and `{"book": id or null, "expert": name, "reply": {...}}` for a
finished call. A clean end writes the totals file and removes the journal; a journal found at the start
of a run is from a run that died, and is folded in (`load_totals`): its bookings as booked, its
reservations that never settled at their reserved amount (`in_flight_at_exit_usd`, counted as spent).
A cut last line (the process died mid-write) is ignored; any other unreadable line is an error naming
the file and line, since guessing would lose or invent spend.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, TextIO

from corl_gym.experts.base import ExpertReply, amount

_SUMMED = ("calls", "requests", "retries", "cached_hits", "cached_saved_usd", "spend_usd", "prompt_tokens",
           "completion_tokens", "usage_estimated", "refused", "in_flight_at_exit_usd")
_REPLY_FIELDS = ("cost_usd", "prompt_tokens", "completion_tokens", "attempts", "cached", "error_kind",
                 "usage_estimated")


@dataclass
class ExpertAccount:
    """One expert's counts in a ledger (see `ledger.py` for what each means)."""

    calls: int = 0
    requests: int = 0
    retries: int = 0
    max_attempts: int = 0
    failures: Counter = field(default_factory=Counter)
    cached_hits: int = 0
    cached_saved_usd: float = 0.0
    spend_usd: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    usage_estimated: int = 0
    refused: int = 0
    in_flight_at_exit_usd: float = 0.0

    def add(self, other: ExpertAccount) -> None:
        for key in _SUMMED:
            setattr(self, key, getattr(self, key) + getattr(other, key))
        self.max_attempts = max(self.max_attempts, other.max_attempts)
        self.failures.update(other.failures)

    @classmethod
    def merged(cls, *accounts: ExpertAccount) -> ExpertAccount:
        total = cls()
        for account in accounts:
            total.add(account)
        return total

    @classmethod
    def from_dict(cls, raw: Any, where: str) -> ExpertAccount:
        """An account from a ledger file; ValueError (naming `where`) for anything that is not one."""
        if not isinstance(raw, dict):
            raise ValueError(f"{where}: an expert's account must be a mapping")
        account = cls()
        for item in fields(cls):
            if item.name == "failures":
                failures = raw.get("failures", {})
                if not isinstance(failures, dict) or any(amount(v) is None for v in failures.values()):
                    raise ValueError(f"{where}: `failures` must map kinds to counts")
                account.failures = Counter({str(k): int(v) for k, v in failures.items()})
            elif item.name in raw:
                value = amount(raw[item.name])
                if value is None:
                    raise ValueError(
                        f"{where}: `{item.name}` must be a finite non-negative number, got {raw[item.name]!r:.40}"
                    )
                setattr(account, item.name, value if item.type == "float" else int(value))
        return account


def book(account: ExpertAccount, reply: ExpertReply) -> None:
    """Count one finished call (live or cached) in `account`."""
    account.calls += 1
    if reply.cached:
        account.cached_hits += 1
        account.cached_saved_usd += amount(reply.cost_usd) or 0.0
        return
    attempts = int(amount(reply.attempts) or 0)
    account.requests += attempts
    account.retries += max(attempts - 1, 0)
    account.max_attempts = max(account.max_attempts, attempts)
    account.spend_usd += amount(reply.cost_usd) or 0.0  # NaN would pass every cap after it
    account.prompt_tokens += int(amount(reply.prompt_tokens) or 0)
    account.completion_tokens += int(amount(reply.completion_tokens) or 0)
    account.usage_estimated += bool(reply.usage_estimated)
    if reply.error is not None:
        account.failures[str(reply.error_kind or "other")] += 1


def account_dicts(accounts: dict[str, ExpertAccount]) -> dict[str, dict[str, Any]]:
    return {name: {**asdict(a), "failures": dict(a.failures)} for name, a in accounts.items()}


def journal_path(path: Path) -> Path:
    return path.with_name(path.name + ".journal")


def write_json(path: Path, content: dict[str, Any]) -> Path:
    """Write `content` atomically (a reader never sees half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".part")
    partial.write_text(json.dumps(content, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    partial.replace(path)
    return path


def load_totals(path: Path) -> tuple[dict[str, ExpertAccount], int]:
    """(accounts, runs) of every earlier run into the ledger file `path`: a dead run's journal if there is
    one (it is the newest), else the file's totals, else nothing."""
    journal = journal_path(path)
    if journal.is_file():
        return _fold(journal)
    if not path.is_file():
        return {}, 0
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: not a ledger file ({exc}); it holds the spend of earlier runs, which the spend cap "
                         "counts: repair it, or move it away to start the count again") from exc
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: not a ledger file (not a JSON object)")
    return _accounts(raw.get("experts", {}), str(path)), int(amount(raw.get("runs", 1)) or 1)


def _accounts(raw: Any, where: str) -> dict[str, ExpertAccount]:
    if not isinstance(raw, dict):
        raise ValueError(f"{where}: `experts` must map expert names to accounts")
    return {str(name): ExpertAccount.from_dict(value, f"{where}: expert {name!r}") for name, value in raw.items()}


def _fold(journal: Path) -> tuple[dict[str, ExpertAccount], int]:
    lines = journal.read_text(encoding="utf-8", errors="replace").split("\n")[:-1]  # the rest: cut short, or empty
    if not lines:
        return {}, 0  # died before its header was complete: it spent nothing
    header = _entry(lines[0], journal, 1)
    accounts, pending = _accounts(header.get("experts"), str(journal)), {}
    for number, line in enumerate(lines[1:], 2):
        try:
            _apply(_entry(line, journal, number), accounts, pending)
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"{journal}, line {number}: not a journal entry ({type(exc).__name__}: {exc})") from exc
    for expert, usd in pending.values():  # in flight when the run died: the provider may have billed them
        account = accounts.setdefault(expert, ExpertAccount())
        account.in_flight_at_exit_usd += usd
        account.spend_usd += usd
    return accounts, int(amount(header.get("runs")) or 0) + 1


def _entry(line: str, journal: Path, number: int) -> dict[str, Any]:
    try:
        entry = json.loads(line)
    except ValueError as exc:
        entry = exc
    if not isinstance(entry, dict):
        raise ValueError(f"{journal}, line {number}: not a journal entry; it records the spend of a run that died: "
                         "repair it, or move it away to drop that spend from the count")
    return entry


def _apply(event: dict[str, Any], accounts: dict[str, ExpertAccount], pending: dict[Any, tuple[str, float]]) -> None:
    if "reserve" in event:
        pending[event["reserve"]] = (str(event["expert"]), amount(event["usd"]) or 0.0)
    elif "release" in event:
        pending.pop(event["release"], None)
    elif "book" in event:
        pending.pop(event["book"], None)
        reply = {key: event["reply"][key] for key in _REPLY_FIELDS}
        failed = reply["error_kind"] is not None
        book(accounts.setdefault(str(event["expert"]), ExpertAccount()),
             ExpertReply(text="", error="failed" if failed else None, **reply))


class Journal:
    """The append-only journal of a live run (see the module docstring)."""

    def __init__(self, path: Path, handle: TextIO):
        self.path, self._handle = path, handle

    @classmethod
    def begin(cls, ledger_path: Path, earlier: dict[str, ExpertAccount], runs: int) -> Journal:
        """Start this run's journal with the totals it begins from; it replaces a dead run's (already folded)
        in one atomic rename, so no spend is ever in neither."""
        path = journal_path(ledger_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + ".part")
        partial.write_text(json.dumps({"experts": account_dicts(earlier), "runs": runs}) + "\n", encoding="utf-8")
        partial.replace(path)
        return cls(path, open(path, "a", encoding="utf-8"))

    def _append(self, event: dict[str, Any]) -> None:
        self._handle.write(json.dumps(event) + "\n")
        self._handle.flush()

    def reserved(self, reservation: int, expert: str, usd: float) -> None:
        self._append({"reserve": reservation, "expert": expert, "usd": usd})

    def released(self, reservation: int) -> None:
        self._append({"release": reservation})

    def booked(self, reservation: int | None, expert: str, reply: ExpertReply) -> None:
        """The call as `book` counted it: amounts that are not finite and non-negative are 0."""
        counts = {
            key: int(amount(getattr(reply, key)) or 0) for key in ("prompt_tokens", "completion_tokens", "attempts")
        }
        kind = None if reply.error is None else str(reply.error_kind or "other")
        self._append({"book": reservation, "expert": expert, "reply": {
            "cost_usd": amount(reply.cost_usd) or 0.0, **counts, "cached": bool(reply.cached), "error_kind": kind,
            "usage_estimated": bool(reply.usage_estimated)}})

    def remove(self) -> None:
        self._handle.close()
        os.unlink(self.path)

"""The run-level ledger: what a run spent on which expert, and the spend cap that stops it.

Per expert: `calls` (calls answered live or from the cache; refused ones are not calls), `requests`
(attempts sent, retries included), `retries`, `max_attempts` (the most any one call took), `failures` (final
failures by kind), `cached_hits`, `cached_saved_usd` (what hits would have cost live), `spend_usd` (live
calls only: a hit costs the run $0), `prompt_tokens`, `completion_tokens`, `usage_estimated`, `refused`
(calls the spend cap refused), `in_flight_at_exit_usd` (calls in flight when a run died or was stopped by a
signal: see below; included in `spend_usd`). Totals and the cap's state (`max_spend_usd`, `max_spend_scope`,
`stopped`, `stop_reason`) sit at the top; `simulated_usd` is the part of `spend_usd` booked by simulated or
replayed experts (`mark_simulated`): dollars computed at list prices that no one paid, labelled so in
`summary()`.

The cap's rule: before a live call the ledger reserves the call's worst-case cost (`Expert.max_cost`: the
completion cap the request sends, which the provider cannot bill past, and one prompt token per byte; the
exact cost for sim and replay) and refuses the call when the money spent, plus every reservation in
flight, plus this one would pass the cap. So spend never passes the cap, however many calls are in
flight at once. A refused call is not made: it returns an error reply (`error_kind="spend_cap"`) and the
ledger is marked stopped, so the run (bench, record) keeps what finished and stops. The cap is a bound,
not a queue: a call refused because the worst cases of the calls in flight leave no room stops the run
too, though those calls may settle far below their reservation (a rerun goes on from there; fewer calls
in flight, e.g. `record --chunk`, or a smaller `max_tokens`, let a cap be used more fully).

With a file (`path`: a bench's `<out>/ledger.json`, a recording's `<stem>.ledger.json`), spend adds up over
every run into it: the file's top-level keys are the totals of all runs (`runs` counts the runs that opened
it), `this_run` holds this run's, and the cap applies to the total (`scope="total"`, the default) or to this
run alone (`scope="run"`). While such a run is live, each reservation and booking is also appended to a
journal beside the file (`ledger_file.Journal`), so a run killed with kill -9 leaves its spend for the next
run, which folds it in: its bookings as booked and the calls it had in flight at their reserved worst case
(the provider may have billed them; `in_flight_at_exit_usd`). `close()` counts the calls a signal left in
flight the same way, writes the file and removes the journal. Thread-safe: one ledger may serve several
loops and threads.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from corl_gym.budget import within_budget
from corl_gym.experts.base import ExpertReply, amount
from corl_gym.experts.ledger_file import ExpertAccount, Journal, account_dicts, book, load_totals, write_json

SCOPES = ("total", "run")


class Ledger:
    """See the module docstring. `max_spend_usd=None` records without a cap; `path` makes it a file that
    accumulates over runs (and that this ledger owns until `close()`)."""

    def __init__(self, max_spend_usd: float | None = None, *, scope: str = "total", path: str | Path | None = None):
        if max_spend_usd is not None and amount(max_spend_usd) is None:
            raise ValueError(f"max_spend must be a finite non-negative USD amount, got {max_spend_usd}")
        if scope not in SCOPES:
            raise ValueError(f"max_spend_scope must be one of {', '.join(SCOPES)}, got {scope!r}")
        self.max_spend_usd, self.scope = max_spend_usd, scope
        self.accounts: dict[str, ExpertAccount] = {}
        self.earlier: dict[str, ExpertAccount] = {}  # every earlier run into the same file, summed
        self.runs_before = 0
        self.stop_reason: str | None = None
        self.simulated: set[str] = set()  # accounts whose spend is computed, not paid
        self._reservations: dict[int, tuple[str, float]] = {}
        self._next_reservation = 1
        self._lock = threading.Lock()
        self.path = Path(path) if path is not None else None
        self._journal: Journal | None = None
        if self.path is not None:
            self.earlier, self.runs_before = load_totals(self.path)
            self._journal = Journal.begin(self.path, self.earlier, self.runs_before)
            self.write()

    def mark_simulated(self, account: str) -> None:
        """`account`'s expert is simulated or replayed: its spend is not real money."""
        self.simulated.add(account)

    @property
    def stopped(self) -> bool:
        return self.stop_reason is not None

    @property
    def spend_usd(self) -> float:
        """This run's spend."""
        return sum(a.spend_usd for a in self.accounts.values())

    @property
    def earlier_spend_usd(self) -> float:
        return sum(a.spend_usd for a in self.earlier.values())

    @property
    def reserved_usd(self) -> float:
        return sum(usd for _, usd in self._reservations.values())

    def _account(self, expert: str) -> ExpertAccount:
        return self.accounts.setdefault(expert, ExpertAccount())

    def reserve(self, expert: str, amount_usd: float) -> int | None:
        """Reserve `amount_usd` for a live call: a reservation id (pass it to `record` or `release`), or None
        (and the ledger stops) when the call could pass the cap."""
        with self._lock:
            if self.max_spend_usd is not None:
                committed = (
                    self.spend_usd + self.reserved_usd + (self.earlier_spend_usd if self.scope == "total" else 0.0)
                )
                if self.stopped or not within_budget(committed + amount_usd, self.max_spend_usd):
                    self._account(expert).refused += 1
                    if not self.stopped:
                        self.stop_reason = self._cap_reason(expert, amount_usd, committed)
                    return None
            reservation, self._next_reservation = self._next_reservation, self._next_reservation + 1
            self._reservations[reservation] = (expert, amount_usd)
            if self._journal is not None:
                self._journal.reserved(reservation, expert, amount_usd)
            return reservation

    def _cap_reason(self, expert: str, amount_usd: float, committed: float) -> str:
        scope = "this run"
        if self.scope == "total" and self.earlier:
            scope = f"the total of {self.runs_before + 1} runs into {self.path}"
        return (f"spend cap ${self.max_spend_usd:.6f} ({scope}): a call to {expert!r} may cost up to "
                f"${amount_usd:.6f} and ${committed:.6f} is spent or reserved")

    def release(self, reservation: int | None) -> None:
        """Drop a reservation whose call was never made (its backend raised before sending it)."""
        with self._lock:
            if self._reservations.pop(reservation, None) is not None and self._journal is not None:
                self._journal.released(reservation)

    def record(self, expert: str, reply: ExpertReply, reservation: int | None = None) -> None:
        """Count one finished call (live or cached), settling its reservation."""
        with self._lock:
            self._reservations.pop(reservation, None)
            if reply.error_kind == "spend_cap":
                return  # not made: counted as refused by `reserve`
            book(self._account(expert), reply)
            if self._journal is not None:
                self._journal.booked(reservation, expert, reply)

    def stop(self, reason: str) -> None:
        with self._lock:
            self.stop_reason = self.stop_reason or reason

    def to_dict(self) -> dict[str, Any]:
        """This run's ledger, with the cap's state."""
        with self._lock:
            accounts = dict(self.accounts)
            return {**_totals(account_dicts(accounts), self.simulated), **self._cap_state()}

    def _cap_state(self) -> dict[str, Any]:
        return {"max_spend_usd": self.max_spend_usd, "max_spend_scope": self.scope, "stopped": self.stopped,
                "stop_reason": self.stop_reason}

    def totals(self) -> dict[str, Any]:
        """Every run into this ledger's file, this one included: the file's content."""
        with self._lock:
            merged = {name: ExpertAccount.merged(account) for name, account in self.earlier.items()}
            for name, account in self.accounts.items():
                merged.setdefault(name, ExpertAccount()).add(account)
            return {**_totals(account_dicts(merged), self.simulated), **self._cap_state(), "runs": self.runs_before + 1,
                    "this_run": _totals(account_dicts(self.accounts), self.simulated)}

    def write(self, path: str | Path | None = None) -> Path:
        """Write the totals (atomically: a reader never sees half a file) to `path`, default the ledger's."""
        target = Path(path) if path is not None else self.path
        if target is None:
            raise ValueError("this ledger has no file: pass a path")
        return write_json(target, self.totals())

    def close(self) -> None:
        """End the run: calls still in flight (abandoned by a signal) count at their reserved worst case, as a
        dead run's do, since the provider may bill them; then write the file and remove the journal."""
        with self._lock:
            for expert, usd in self._reservations.values():
                account = self._account(expert)
                account.in_flight_at_exit_usd += usd
                account.spend_usd += usd
            self._reservations.clear()
        if self.path is None:
            return
        self.write()
        with self._lock:
            if self._journal is not None:
                self._journal.remove()
                self._journal = None

    def summary(self) -> str:
        """One line for a terminal."""
        d = self.to_dict()
        failures = ", ".join(f"{k} {v}" for k, v in sorted(d["failures"].items())) or "none"
        simulated = d["simulated_usd"]
        if simulated and simulated >= d["spend_usd"]:
            spent = f"${d['spend_usd']:.6f} simulated (simulated or replayed experts: no money spent)"
        else:
            spent = f"${d['spend_usd']:.6f} spent" + (f" (${simulated:.6f} of it simulated)" if simulated else "")
        line = (f"ledger: {spent}, {d['calls']} calls, {d['requests']} requests, "
                f"{d['retries']} retries, {d['cached_hits']} cached, failures: {failures}")
        if self.earlier:
            line += f"; ${self.earlier_spend_usd + d['spend_usd']:.6f} in total over {self.runs_before + 1} runs"
        return line + (f"; STOPPED: {d['stop_reason']}" if d["stopped"] else "")


def _totals(experts: dict[str, dict[str, Any]], simulated: set[str]) -> dict[str, Any]:
    def total(key: str) -> Any:
        return sum(e[key] for e in experts.values())

    failures: dict[str, int] = {}
    for account in experts.values():
        for kind, count in account["failures"].items():
            failures[kind] = failures.get(kind, 0) + count
    return {
        "spend_usd": total("spend_usd"),
        "simulated_usd": sum(e["spend_usd"] for name, e in experts.items() if name in simulated),
        "calls": total("calls"), "requests": total("requests"),
        "retries": total("retries"), "max_attempts": max([e["max_attempts"] for e in experts.values()], default=0),
        "failures": failures, "cached_hits": total("cached_hits"), "cached_saved_usd": total("cached_saved_usd"),
        "refused": total("refused"), "in_flight_at_exit_usd": total("in_flight_at_exit_usd"), "experts": experts,
    }

"""The run-level ledger: what a run spent on which expert, and the spend cap that stops it.

Per expert: `calls` (calls answered live or from the cache; refused ones are not calls), `requests` (attempts sent, retries
included), `retries`, `max_attempts` (the most any one call took), `failures` (final failures by kind),
`cached_hits`, `cached_saved_usd` (what hits would have cost live), `spend_usd` (live calls only: a hit
costs the run $0), `prompt_tokens`, `completion_tokens`, `usage_estimated`, `refused` (calls the spend cap
refused). Totals and the cap's state (`max_spend_usd`, `stopped`, `stop_reason`) sit at the top;
`simulated_usd` is the part of `spend_usd` booked by simulated or replayed experts (`mark_simulated`):
dollars computed at list prices that no one paid, labelled so in `summary()`.

The cap's rule: before a live call the ledger reserves the call's worst-case cost (`ExpertSpec.max_cost`:
the entry's `max_tokens`, which the provider cannot bill past) and refuses the call when the money spent,
plus every reservation in flight, plus this one would pass the cap. A refused call is not made: it
returns an error reply (`error_kind="spend_cap"`) and the ledger is marked stopped, so the run (bench,
record) keeps what finished and stops. With backends that bound no completion length (sim), the
reservation is the expected cost and a run can end a little past the cap; `spend_usd` shows by how much.
Thread-safe: one ledger may serve several loops and threads.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from corl_gym.experts.base import ExpertReply, amount


@dataclass
class ExpertAccount:
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


class Ledger:
    """See the module docstring. `max_spend_usd=None` records without a cap."""

    def __init__(self, max_spend_usd: float | None = None):
        if max_spend_usd is not None and max_spend_usd < 0:
            raise ValueError(f"max_spend must be a non-negative USD amount, got {max_spend_usd}")
        self.max_spend_usd = max_spend_usd
        self.accounts: dict[str, ExpertAccount] = {}
        self.reserved_usd = 0.0
        self.stop_reason: str | None = None
        self.simulated: set[str] = set()  # accounts whose spend is computed, not paid
        self._lock = threading.Lock()

    def mark_simulated(self, account: str) -> None:
        """`account`'s expert is simulated or replayed: its spend is not real money."""
        self.simulated.add(account)

    @property
    def stopped(self) -> bool:
        return self.stop_reason is not None

    @property
    def spend_usd(self) -> float:
        return sum(a.spend_usd for a in self.accounts.values())

    def _account(self, expert: str) -> ExpertAccount:
        return self.accounts.setdefault(expert, ExpertAccount())

    def reserve(self, expert: str, amount_usd: float) -> bool:
        """Reserve `amount_usd` for a live call; False (and the ledger stops) when it would pass the cap."""
        with self._lock:
            if self.max_spend_usd is None:
                return True
            committed = self.spend_usd + self.reserved_usd
            if self.stopped or committed + amount_usd > self.max_spend_usd + 1e-12:
                self._account(expert).refused += 1
                if not self.stopped:
                    self.stop_reason = (
                        f"spend cap ${self.max_spend_usd:.6f}: a call to {expert!r} may cost up to "
                        f"${amount_usd:.6f} and ${committed:.6f} is spent or reserved"
                    )
                return False
            self.reserved_usd += amount_usd
            return True

    def release(self, amount_usd: float) -> None:
        with self._lock:
            self.reserved_usd = max(0.0, self.reserved_usd - amount_usd)

    def record(self, expert: str, reply: ExpertReply) -> None:
        """Count one finished call (live or cached)."""
        with self._lock:
            account = self._account(expert)
            if reply.error_kind == "spend_cap":
                return  # not made: counted as refused by `reserve`
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

    def stop(self, reason: str) -> None:
        with self._lock:
            self.stop_reason = self.stop_reason or reason

    def to_dict(self) -> dict[str, Any]:
        with self._lock:
            experts = {name: {**asdict(a), "failures": dict(a.failures)} for name, a in self.accounts.items()}
        failures: Counter = Counter()
        for account in self.accounts.values():
            failures.update(account.failures)
        total = lambda key: sum(e[key] for e in experts.values())  # noqa: E731
        return {
            "spend_usd": total("spend_usd"),
            "simulated_usd": sum(e["spend_usd"] for name, e in experts.items() if name in self.simulated),
            "max_spend_usd": self.max_spend_usd,
            "stopped": self.stopped,
            "stop_reason": self.stop_reason,
            "calls": total("calls"),
            "requests": total("requests"),
            "retries": total("retries"),
            "max_attempts": max([e["max_attempts"] for e in experts.values()], default=0),
            "failures": dict(failures),
            "cached_hits": total("cached_hits"),
            "cached_saved_usd": total("cached_saved_usd"),
            "refused": total("refused"),
            "experts": experts,
        }

    def write(self, path: str | Path) -> Path:
        """Write the ledger as JSON (atomically: a reader never sees half a file)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + ".part")
        partial.write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n", encoding="utf-8")
        partial.replace(path)
        return path

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
        return line + (f"; STOPPED: {d['stop_reason']}" if d["stopped"] else "")

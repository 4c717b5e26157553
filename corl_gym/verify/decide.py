"""How a pair is decided: the verdicts, the in-process steps and the entry points that run them.

`_decide_fast` runs steps 1-2 of the package docstring (normalise, then exact arithmetic on our own
parse tree) in the calling thread and hands anything else to the worker pool (`corl_gym.verify.worker`)
as a `_Slow` job; `check`, `check_many`, `acheck` and `fast_path` wrap it for their callers. The
worker module is imported only when a pair needs it, so importing this module loads no sympy.
"""

from __future__ import annotations

import enum
import re
import time
from collections.abc import Iterable
from decimal import Decimal
from fractions import Fraction

from . import norm
from .compare import NeedSlow
from .parse import LimitExceeded, ParseError, parse

__all__ = ["Verdict", "check", "acheck", "is_equivalent", "check_many", "fast_path", "warm_up", "MAX_INPUT_CHARS"]

#: Raw inputs longer than this are refused before any processing.
MAX_INPUT_CHARS = 200_000
_CHOICE_GOLD = re.compile(r"(?:\\text(?:bf)?\{)?\s*\(?\s*[A-E]\s*\)?\s*\}?")


class Verdict(enum.Enum):
    """Outcome of one check. Only CORRECT means the answer earns reward.

    WRONG: both sides understood, not the same answer. UNPARSEABLE: a side is empty, not a string,
    not math we or math-verify can read, or past a safety cap (too long, too deep, too large).
    TIMEOUT: the slow path missed the deadline or its worker died (e.g. out of memory).
    """

    CORRECT = "CORRECT"
    WRONG = "WRONG"
    UNPARSEABLE = "UNPARSEABLE"
    TIMEOUT = "TIMEOUT"


class _Slow(Exception):
    """Carries the normalised pair to the worker."""

    def __init__(self, pred: str, gold: str) -> None:
        super().__init__(pred, gold)
        self.job = (pred, gold)


def _decide_fast(pred: str, gold: str) -> Verdict:
    """The verdict of steps 1-2, or raise `_Slow` with the job for the worker."""
    pred, gold = _as_text(pred), _as_text(gold)
    if pred is None or gold is None:
        return Verdict.UNPARSEABLE
    if len(pred) > MAX_INPUT_CHARS or len(gold) > MAX_INPUT_CHARS:
        return Verdict.UNPARSEABLE
    p, g = norm.normalize(pred), norm.normalize(gold)
    if not p or not g or len(p) > norm.MAX_ANSWER_CHARS or len(g) > norm.MAX_ANSWER_CHARS:
        return Verdict.UNPARSEABLE
    if p == g:
        return Verdict.CORRECT
    letter = norm.choice_letter(g) if _is_choice(g) else None
    if letter is not None:
        return Verdict.CORRECT if norm.choice_letter(p) == letter else Verdict.WRONG
    if norm.is_text_answer(g) or norm.is_text_answer(p):
        key = norm.text_key(g)
        return Verdict.CORRECT if key is not None and norm.text_key(p) == key else Verdict.WRONG
    try:
        gold_tree, pred_tree = parse(g), parse(p)
        from .fast import fast_equivalent

        return Verdict.CORRECT if fast_equivalent(gold_tree, pred_tree) else Verdict.WRONG
    except LimitExceeded:
        return Verdict.UNPARSEABLE
    except (NeedSlow, ParseError, ZeroDivisionError):
        raise _Slow(p, g) from None


def _as_text(value: object) -> str | None:
    """Strings as they are; plain numbers (a gold stored as 42 or 27.0) as their decimal text."""
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float, Fraction, Decimal)) and not isinstance(value, bool):
        return str(value) if value == value and abs(value) != float("inf") else None
    return None


def _is_choice(gold: str) -> bool:
    r"""A multiple-choice gold: `(C)`, `\text{(C)}` or `\text{C}` (a bare `C` stays a symbol)."""
    if _CHOICE_GOLD.fullmatch(gold.strip()) is None:
        return False
    return "(" in gold or gold.startswith("\\text")


def fast_path(pred: str, gold: str) -> Verdict | None:
    """The verdict the fast path reaches without a worker, or None when the worker is needed."""
    try:
        return _decide_fast(pred, gold)
    except _Slow:
        return None
    except Exception:  # never raise on model output
        return Verdict.UNPARSEABLE


def check(pred: str, gold: str, timeout: float = 2.0) -> Verdict:
    """Whether `pred` is the same answer as `gold`; never raises, decided within `timeout` seconds.

    `timeout` bounds the whole call except two waits that are no fault of the answer: the start of
    a worker process when none is ready (once per process, see `warm_up`), and queueing for a free
    worker when more threads than CPUs check at once. A pathological input comes back
    UNPARSEABLE at once or TIMEOUT at the deadline.
    """
    start = time.monotonic()
    timeout = _clamp(timeout)
    try:
        return _decide_fast(pred, gold)
    except _Slow as slow:
        remaining = timeout - (time.monotonic() - start)
        if remaining <= 0:
            return Verdict.TIMEOUT
        try:
            from .worker import get_pool

            return Verdict(get_pool().run([slow.job], remaining)[0])
        except Exception:
            return Verdict.TIMEOUT
    except Exception:
        return Verdict.UNPARSEABLE


async def acheck(pred: str, gold: str, timeout: float = 2.0) -> Verdict:
    """`check` for coroutines: runs in the loop's default executor so other tasks keep running.

    Calling plain `check` inside a coroutine is also safe (the deadline holds), but blocks the loop.
    """
    import asyncio

    return await asyncio.get_running_loop().run_in_executor(None, check, pred, gold, timeout)


def _clamp(timeout: float) -> float:
    """Deadlines live in [0 s, 1 day]; NaN or a non-number means the default 2 s."""
    try:
        value = float(timeout)
    except (TypeError, ValueError):
        return 2.0
    return 2.0 if value != value else min(max(value, 0.0), 86_400.0)


def is_equivalent(pred: str, gold: str) -> bool:
    """True exactly when `check(pred, gold)` is CORRECT."""
    return check(pred, gold) is Verdict.CORRECT


def check_many(pairs: Iterable[tuple[str, str]], timeout: float = 2.0) -> list[Verdict]:
    """`check` for many (pred, gold) pairs: fast path here, the rest across the worker pool.

    Each pair gets its own `timeout` of worker time; results come back in input order.
    """
    pairs = list(pairs)
    verdicts: list[Verdict | None] = [None] * len(pairs)
    slow_index, slow_jobs = [], []
    for k, pair in enumerate(pairs):
        try:
            pred, gold = pair
            verdicts[k] = _decide_fast(pred, gold)
        except _Slow as slow:
            slow_index.append(k)
            slow_jobs.append(slow.job)
        except Exception:
            verdicts[k] = Verdict.UNPARSEABLE
    if slow_jobs:
        from .worker import get_pool

        try:
            names = get_pool().run(slow_jobs, _clamp(timeout))
        except Exception:
            names = ["TIMEOUT"] * len(slow_jobs)
        for k, name in zip(slow_index, names):
            verdicts[k] = Verdict(name)
    return verdicts  # type: ignore[return-value]


def warm_up(workers: int = 2) -> None:
    """Start worker processes now (about half a second each, in the background)."""
    from .worker import get_pool

    get_pool().warm_up(workers)

r"""Answers grouped by equivalence: the plurality vote of routing policies.

`AnswerGroups` holds the answers an episode has bought, one per source (the controller's own answer, or
an expert's), grouped by `corl_gym.verify` equivalence. `CORL-Routing-v1`, the text env's aggregating
routers and the labels of fitted routers all vote through it, so every policy votes by the same rules:

- A source's latest answer counts: asking an expert twice does not double its vote. A reply that states
  no final answer (no `\boxed{}`, or a failed call) is no answer: it joins no group (`reply_answer`).
- A new answer joins the first group whose first answer it is equivalent to (`verify.check` is CORRECT
  within `timeout` seconds), else it opens a group. Grouping runs once per new answer, never per step;
  verdicts are also cached per pair of answer strings for the whole process (`equivalent`), so a
  benchmark that meets the same pair in many episodes checks it once.
- The plurality is the largest group. Ties go to the group holding the answer that cost the most (the
  controller's own answer costs nothing; among equal costs, the one bought last), and the answer
  submitted for a group is its dearest answer: the one paid most for is taken as the most trustworthy.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass

from corl_gym import verify

_VERDICTS: dict[tuple[str, str], bool] = {}
_MAX_CACHED = 200_000  # pairs; a few MB at most, cleared when full


def equivalent(a: str, b: str, timeout: float = 2.0) -> bool:
    """Whether two stated answers are the same answer, cached per pair (a TIMEOUT is not cached: it may
    pass on a quieter machine)."""
    if a == b:
        return True
    key = (a, b) if a <= b else (b, a)
    cached = _VERDICTS.get(key)
    if cached is not None:
        return cached
    verdict = verify.check(a, b, timeout=timeout)
    if verdict is not verify.Verdict.TIMEOUT:
        if len(_VERDICTS) >= _MAX_CACHED:
            _VERDICTS.clear()
        _VERDICTS[key] = verdict is verify.Verdict.CORRECT
    return verdict is verify.Verdict.CORRECT


def reply_answer(reply: object) -> str | None:
    """The final answer an `ExpertReply` states (its last `\\boxed{}` value), or None when the call failed
    or the text states none. (An empty `\\boxed{}` gives "", which `AnswerGroups` counts as no answer.)"""
    if reply is None or getattr(reply, "error", None) is not None:
        return None
    text = getattr(reply, "text", None)
    return verify.extract_answer(text) if isinstance(text, str) else None  # remembered for short replies


@dataclass
class _Answer:
    text: str
    cost: float
    order: int  # when it was bought: breaks ties between equal costs

    def dearness(self) -> tuple[float, int]:
        return self.cost, self.order


class AnswerGroups:
    """The answers of one episode, grouped by equivalence (see the module docstring).

    `add(source, answer, cost)` records a source's answer. `groups` lists the
    sources of each group in creation order; `version` grows with every change, so a caller can cache
    what it derives from the groups (an observation) and recompute only when it changed."""

    def __init__(self, timeout: float = 2.0):
        self.timeout = timeout
        self.answers: dict[Hashable, _Answer] = {}
        self.groups: list[list[Hashable]] = []
        self.version = 0
        self._bought = 0
        self._winner_cache: tuple[int, Hashable] | None = None
        self._winner_version = 0  # the version `_winner_cache` holds the winner of (none at version 0)

    def add(self, source: Hashable, answer: str | None, cost: float = 0.0) -> None:
        """Record `source`'s latest answer (None or "": it stated none); it replaces an earlier one."""
        answer = answer or None
        self._bought += 1
        old = self.answers.get(source)
        if old is not None and answer == old.text:
            old.cost, old.order = cost, self._bought  # the same answer again: only its price is new
            self.version += 1
            return
        if old is not None:
            self._remove(source)
        if answer is not None:
            self.answers[source] = _Answer(answer, cost, self._bought)
            self._join(source, answer)
        self.version += 1

    def _remove(self, source: Hashable) -> None:
        del self.answers[source]
        for group in self.groups:
            if source in group:
                group.remove(source)
        self.groups = [group for group in self.groups if group]

    def _join(self, source: Hashable, answer: str) -> None:
        for group in self.groups:
            if equivalent(answer, self.answers[group[0]].text, self.timeout):
                group.append(source)
                return
        self.groups.append([source])

    def answer(self, source: Hashable) -> str | None:
        """The answer `source` stated, or None (not asked, or no answer)."""
        entry = self.answers.get(source)
        return None if entry is None else entry.text

    def group_of(self, source: Hashable) -> int | None:
        """The index in `groups` of the group holding `source`'s answer, or None."""
        for index, group in enumerate(self.groups):
            if source in group:
                return index
        return None

    def sizes(self) -> list[int]:
        return [len(group) for group in self.groups]

    def plurality_group(self) -> int | None:
        """The index of the winning group (largest; ties to the dearest answer), or None with no answers."""
        winner = self._winner()
        return None if winner is None else winner[0]

    def plurality(self) -> tuple[Hashable, str] | None:
        """(source, answer) of the plurality: the winning group's dearest answer; None with no answers."""
        winner = self._winner()
        return None if winner is None else (winner[1], self.answers[winner[1]].text)

    def plurality_answer(self) -> str:
        """The plurality's answer, or "" when no source stated one (submitting it is simply wrong)."""
        best = self.plurality()
        return "" if best is None else best[1]

    def _winner(self) -> tuple[int, Hashable] | None:
        """(the winning group's index, the source of its dearest answer), worked out once per version in one
        pass: an env asks for it after every new answer. No two answers are equally dear (`order` differs),
        so there are no ties to break."""
        if self._winner_version != self.version:
            best, winner = None, None
            for index, group in enumerate(self.groups):
                dearest = group[0] if len(group) == 1 else max(group, key=self._dearness)  # most groups hold one
                rank = (len(group), self._dearness(dearest))
                if best is None or rank > best:
                    best, winner = rank, (index, dearest)
            self._winner_cache, self._winner_version = winner, self.version
        return self._winner_cache

    def _dearness(self, source: Hashable) -> tuple[float, int]:
        return self.answers[source].dearness()

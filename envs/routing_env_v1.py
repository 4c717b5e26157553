"""`CORL-Routing-v1`: `CORL-Routing-v0` plus actions that submit any answer seen so far or the plurality."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from corl_gym.answer_groups import AnswerGroups
from corl_gym.data import Problem
from corl_gym.envs.routing_env import CORLRoutingEnv
from corl_gym.protocol import AnswerAction, CallAction


class CORLRoutingEnvV1(CORLRoutingEnv):
    """Route one math problem per episode, and aggregate: submit any answer bought so far, or the plurality.

    The same problems, pools, costs, budgets, reward, episode end, arguments and v0 entries as
    `CORL-Routing-v0` (`CORLRoutingEnv`, whose docstring is the rest of this spec). With answers that
    are the experts' own (replay pools such as `zeroeval-math-l5`), agreement between answers says which
    one to trust, and a router that can go back to an earlier answer or vote beats the best single expert.

    **Action** `Discrete(2K + 3)` for a pool of K experts (pool order). As in v0, `0` submits the candidate
    (the latest expert answer, else the controller's own) and `k` in 1..K asks expert k. New:
    `K + 1 + j` for j in 0..K submits source j's answer (j = 0: the controller's own; j = k: expert k's
    latest answer); `2K + 2` submits the plurality answer. Answers are grouped by `corl_gym.verify`
    equivalence (`corl_gym.answer_groups`, the rules every aggregating policy shares): a source's latest
    answer counts once; a reply with no final answer (no `\\boxed{}`) or a failed call is no answer; the
    largest group wins, ties to the group holding the answer that cost the most (the controller's own
    costs nothing), and the winning group's dearest answer is submitted. An episode ends on any submit.

    **Masks** (`action_masks()`): 0..K as in v0; submitting source j's answer is allowed once j has stated
    one; the plurality is always allowed (with no answer at all it submits an empty, wrong answer). Masks
    are advice: an unmasked learner that submits an answer not seen yet submits an empty answer (reward 0).

    **Observation** `Box(-1, 1, (D,), float32)`: v0's entries (the routing part), then the answer groups,
    then the problem features. The groups, computed once per new answer, never per step: group sizes,
    largest first, / (K + 1), zero-padded (K + 1); per source (self, expert 1..K), the size of its answer's
    group / (K + 1), 0 without an answer (K + 1); per source, 1 if its answer is in the plurality's group,
    -1 if in another, 0 without an answer (K + 1); per pair of sources (i < j, in the order (0, 1), (0, 2),
    ..., (K - 1, K)), 1 if their answers share a group, -1 if not, 0 if either has none (K (K + 1) / 2);
    the plurality's margin, (largest - second largest group) / (K + 1) (1).

    **Info**: v0's, plus `plurality` (the answer the plurality action submits; "" with no answer) and
    `groups` (the sources of each group, a tuple of tuples of source indices, in order of creation).
    """

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        self.action_space = gym.spaces.Discrete(2 * self.K + 3)
        self.plurality_action = 2 * self.K + 2
        self._pairs = [(i, j) for i in range(self.K + 1) for j in range(i + 1, self.K + 1)]
        self._groups_at = self._routing_size  # the group entries sit between v0's and the problem features
        self._start_mask = np.zeros(self.action_space.n, dtype=bool)
        self._start_mask[0] = self._start_mask[-1] = True  # submitting the candidate or the plurality: always
        # (groups, the plurality's group) -> (the observation's group entries, which sources' answers may be submitted)
        self._entries: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}

    def _extra_size(self) -> int:
        sources = self.K + 1
        return 3 * sources + sources * (sources - 1) // 2 + 1

    def _start_answers(self, own: Any) -> None:
        super()._start_answers(own)
        self.answers = AnswerGroups(timeout=self.text_env.verify_timeout)
        self.answers.add(0, self._own_answer, 0.0)
        self._groups_seen = -1  # the answers' version the group entries were computed for

    def _record(self, expert: int, reply: Any, answer: str | None) -> None:
        super()._record(expert, reply, answer)
        if reply is not None and reply.error is None:  # a failed call says nothing new about the answer
            self.answers.add(expert, answer, reply.cost_usd)

    def _turn(self, action: int) -> AnswerAction | CallAction:
        if action <= self.K:
            return super()._turn(action)
        if action == self.plurality_action:
            answer = self._plurality  # synced with the groups after the previous step, which nothing changed since
        else:
            answer = self.answers.answer(action - self.K - 1) or ""
        return AnswerAction(f"\\boxed{{{answer}}}")

    def _after_step(self, info: dict[str, Any]) -> tuple[np.ndarray, dict[str, Any]]:
        if self._groups_seen != self.answers.version:  # an answer came in
            self._sync_groups()
        observation, full = super()._after_step(info)
        full["plurality"], full["groups"] = self._plurality, self._groups_info
        return observation, full

    def _start_observation(self, problem: Problem, info: dict[str, Any]) -> None:
        """v0's, plus the groups of a new episode: the controller's own answer alone, or no group."""
        super()._start_observation(problem, info)
        own = self.answers.answer(0)  # None when the controller stated no answer
        self._show_groups(((0,),) if own else (), 0 if own else None, own or "")

    def _sync_groups(self) -> None:
        """Recompute what the observation, masks and info show of the groups."""
        answers = self.answers
        best = answers.plurality()
        self._show_groups(tuple(map(tuple, answers.groups)), answers.plurality_group(), "" if best is None else best[1])

    def _show_groups(self, groups: tuple[tuple[int, ...], ...], winner: int | None, plurality: str) -> None:
        """Show a grouping (the sources of each group: what info shows, and the key of its entries), the
        plurality's group and its answer in the observation, masks and info."""
        entries = self._entries.get((groups, winner))
        if entries is None:  # the same grouping recurs across episodes: compute its entries once
            entries = self._grouping_entries(groups, winner)
        self._obs[self._groups_at : self._features_at] = entries[0]
        self._mask[self.K + 1 : -1] = entries[1]
        self._groups_info, self._plurality = groups, plurality
        self._groups_seen = self.answers.version

    def _grouping_entries(self, groups: tuple[tuple[int, ...], ...],
                          winner: int | None) -> tuple[np.ndarray, np.ndarray]:
        """(the group entries, whether each source's answer may be submitted) of a grouping, remembered."""
        group_of = [-1] * (self.K + 1)  # per source: its group's index, -1 without an answer
        for index, group in enumerate(groups):
            for source in group:
                group_of[source] = index
        answered = np.array([index >= 0 for index in group_of], dtype=bool)
        if len(self._entries) >= 4096:  # bounded for large pools, whose groupings are many
            self._entries.clear()
        entries = self._entries[(groups, winner)] = (self._group_entries(group_of, winner), answered)
        return entries

    def _group_entries(self, group_of: list[int], winner: int | None) -> np.ndarray:
        """The observation's answer-group entries (see the class docstring) of a grouping: each source's
        group index (-1: no answer) and the plurality's group."""
        n = self.K + 1
        size = {index: group_of.count(index) for index in set(group_of) if index >= 0}
        sizes = sorted(size.values(), reverse=True) + [0, 0]
        own_size = [size[index] / n if index >= 0 else 0.0 for index in group_of]
        in_plurality = [0.0 if index < 0 else (1.0 if index == winner else -1.0) for index in group_of]
        pairs = [0.0 if group_of[i] < 0 or group_of[j] < 0 else (1.0 if group_of[i] == group_of[j] else -1.0)
                 for i, j in self._pairs]
        padded = [value / n for value in sizes[:n]] + [0.0] * max(0, n - len(sizes))
        return np.array(padded + own_size + in_plurality + pairs + [(sizes[0] - sizes[1]) / n], dtype=np.float32)

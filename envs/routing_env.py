"""`CORL-Routing-v0`: the routing view of `CORL-Math-v0`, with discrete actions and numeric observations.

`CORL-Routing-v1` (`routing_env_v1.py`) extends it with actions that submit any answer seen so far or the
plurality answer; v0 keeps its spaces and semantics as they are, so routers trained on it stay valid."""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.error import ResetNeeded

from corl_gym.answer_groups import equivalent, reply_answer
from corl_gym.budget import within_budget
from corl_gym.data import Problem
from corl_gym.envs.features import feature_size, problem_features
from corl_gym.envs.math_env import CORLMathEnv
from corl_gym.envs.untrusted import answer_text, call_text
from corl_gym.protocol import AnswerAction, CallAction

BUDGET_SLOTS = ("low", "medium", "high", "custom")
# The text env's arguments that mean the same here; its others (tokenizer, prompt style, hard cap, format
# reward) concern the text a controller reads and writes, which routing has none of.
TEXT_ENV_ARGUMENTS = (
    "dataset", "pool", "budget", "penalty", "penalty_kwargs", "limit", "problems", "expert_seed", "verify_timeout",
)


class CORLRoutingEnv(gym.Env):
    """Route one math problem per episode: answer with the controller's own answer, or pay experts first.

    The same problems, pools, costs, budgets and reward as `CORL-Math-v0`: this env drives a
    `CORLMathEnv` underneath with scripted turns, so the reward code is the text env's own.

    **Action** `Discrete(K + 1)` for a pool of K experts (pool order). `0` submits the current candidate
    answer and ends the episode; `k >= 1` sends the whole problem to expert k, whose boxed answer becomes
    the candidate. Before any call the candidate is the controller's own answer (the pool's `controller`
    entry, free). `action_masks()` is False for experts whose expected cost exceeds the remaining budget
    and, on the last allowed step, for every expert (only submitting can earn reward); masks are advice
    for maskable learners: an unmasked learner may still call, and pays. An action is an integer (a Python
    or NumPy integer, or a one-element integer array); anything else (`1.5`, `"1"`, `True`) or an integer
    out of range raises ValueError. `step()` or `action_masks()` before the first `reset()` raises
    `gymnasium.error.ResetNeeded`. The turns reach the text env as parsed actions (`AnswerAction`,
    `CallAction`), never as text to re-parse, so grammar tags in a problem or in an expert's answer are
    plain text: they cannot end, cut or redirect the turn.

    **Observation** `Box(-1, 1, (D,), float32)`, in order: budget mode one-hot (low, medium, high,
    custom; 4); threshold `(log10(USD) + 6) / 8` clipped (1); remaining budget / threshold clipped to
    [-1, 1] (1); each expert's expected cost / threshold / 10, clipped (K); calls so far per expert /
    `max_steps` (K); candidate source one-hot (self, expert 1..K; K + 1); whether the candidate agrees
    with the controller's own answer (1); distinct answers seen / (K + 1) (1); step / `max_steps` (1);
    whether each answerer's answer agrees with the candidate (self, expert 1..K; K + 1: 1 agrees, -1
    differs, 0 not asked yet; the candidate's own source counts as agreeing); then the problem features
    (`features(problem)`, default `corl_gym.envs.features.problem_features`; computed once per problem and
    kept, like the experts' expected costs, so the function must be deterministic).

    **Reward** the text env's: on submission `correct * penalty(cost, threshold)`; 0 otherwise.
    **Episode end**: terminated on submission; truncated after `max_steps` steps (default K + 1) without
    one, with the text env's truncation reward (0; minus the spend under `penalty="linear"`).

    **Info**: the text env's info (`cost_usd`, `calls`, `correct`, `over_budget`, ...), plus `candidate`
    (the current answer string) and `action_mask`.

    **Arguments** (keywords only): `max_steps`, `features`, `render_mode`, and the text env's arguments in
    `TEXT_ENV_ARGUMENTS` (`dataset`, `pool`, `budget`, `penalty`, `penalty_kwargs`, `limit`, `problems`,
    `expert_seed`, `verify_timeout`: see `CORLMathEnv`), passed to it as they are; any other is a TypeError.
    """

    metadata = {"render_modes": ["ansi"], "render_fps": 1}

    def __init__(
        self,
        *,
        max_steps: int | None = None,
        features: Callable[[Problem], np.ndarray] = problem_features,
        render_mode: str | None = None,
        **text_env_kwargs: Any,
    ):
        refused = sorted(set(text_env_kwargs) - set(TEXT_ENV_ARGUMENTS))
        if refused:
            raise TypeError(f"{type(self).__name__} takes no argument {', '.join(refused)}; of the text env's "
                            f"arguments it takes {', '.join(TEXT_ENV_ARGUMENTS)}")
        self.text_env = CORLMathEnv(max_turns=max_steps or 1, render_mode=render_mode, **text_env_kwargs)
        self.pool = self.text_env.pool
        self.expert_names = self.pool.expert_names()
        self.K = len(self.expert_names)
        self.max_steps = max_steps or self.K + 1
        self.text_env.max_turns = self.max_steps
        self.features = features
        self.render_mode = render_mode
        self._routing_size = 4 + 1 + 1 + self.K + self.K + (self.K + 1) + 3 + (self.K + 1)
        size = self._routing_size + self._extra_size() + feature_size(features)
        self.observation_space = gym.spaces.Box(-1.0, 1.0, shape=(size,), dtype=np.float32)
        self.action_space = gym.spaces.Discrete(self.K + 1)
        # Where the entries that change within an episode sit (the layout is the class docstring's).
        self._calls_at, self._source_at = 6 + self.K, 6 + 2 * self.K
        self._turn_at = self._source_at + self.K + 3
        self._features_at = self._routing_size + self._extra_size()
        self._start_mask = np.zeros(self.action_space.n, dtype=bool)  # a subclass sizes it to its actions
        self._start_mask[0] = True  # submitting is always allowed
        # (candidate's source, distinct answers, agreement) -> the observation's answer entries; few recur
        self._answer_entries: dict[tuple[int, int, tuple[float, ...]], np.ndarray] = {}
        # A new episode's: the candidate is the controller's own answer, the only one (`_start_answers`).
        self._start_answer_block = self._new_answer_block((0, 1, (1.0,) + (0.0,) * self.K))
        self._info: dict[str, Any] | None = None  # the text env's latest info; None until reset
        # id -> (the experts' expected costs, an observation of zeros holding the problem's features)
        self._per_problem: dict[str, tuple[list[float], np.ndarray]] = {}
        # (mode, threshold) -> the budget's entries (mode one-hot, threshold); a few, unless dollar budgets vary
        self._per_budget: dict[tuple[str, float], np.ndarray] = {}

    def _extra_size(self) -> int:
        """Observation entries a subclass adds between the routing part and the problem features."""
        return 0

    @property
    def problems(self) -> list[Problem]:
        return self.text_env.problems

    @property
    def problem(self) -> Problem | None:
        return self.text_env.problem

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self._info = None
        self._verdicts: dict[tuple[str, str], bool] = {}
        _, info = self.text_env.reset(seed=seed, options=options)
        problem = self.text_env.problem
        self._start_answers(self.pool.call_controller(problem.problem, problem))
        self._info = info
        self._start_observation(problem, info)
        return self._after_step(info)

    def _start_answers(self, own: Any) -> None:
        """Start the episode's answers from the controller's own reply `own`."""
        self._own_answer = reply_answer(own)  # its final answer, None when it states none
        self._own = (self._own_answer or own.text.strip()) if own.error is None else ""  # a failed call states none
        self._candidate, self._source, self._distinct = self._own, 0, [self._own]
        self._latest: dict[int, str] = {0: self._own}  # answerer (0 = self, k = expert k) -> its answer
        self._answers_seen = False  # whether the observation shows the latest answers

    def _start_observation(self, problem: Problem, info: dict[str, Any]) -> None:
        """Write the entries fixed for the episode (budget, threshold, expected costs, problem features) once,
        and start the mask; each step writes only the entries that changed."""
        threshold, mode = info["threshold_usd"], info["budget_mode"]
        self._expected, template = self._problem_entries(problem)
        self._scale = scale = threshold if threshold > 0 else 1e-9
        obs = self._obs = template.copy()
        obs[:5] = self._budget_entries(mode, threshold)
        obs[6 : 6 + self.K] = [min(max(cost / scale / 10.0, -1.0), 1.0) for cost in self._expected]
        obs[self._source_at : self._routing_size] = self._start_answer_block
        self._answers_seen = True
        self._mask = self._start_mask.copy()
        self._mask_inputs: tuple[bool, float] | None = None  # (last step?, spend) the expert entries were set for

    def _budget_entries(self, mode: str, threshold: float) -> np.ndarray:
        """The observation's budget entries (mode one-hot, threshold), made once per budget."""
        entries = self._per_budget.get((mode, threshold))
        if entries is None:
            if len(self._per_budget) >= 64:  # custom dollar budgets could be many: keep a few
                self._per_budget.clear()
            entries = np.zeros(5, dtype=np.float32)
            entries[BUDGET_SLOTS.index(mode) if mode in BUDGET_SLOTS else 3] = 1.0
            entries[4] = _clip((math.log10(max(threshold, 1e-6)) + 6.0) / 8.0)
            self._per_budget[(mode, threshold)] = entries
        return entries

    def _problem_entries(self, problem: Problem) -> tuple[list[float], np.ndarray]:
        """(the experts' expected costs, an observation of zeros holding the clipped problem features) of
        `problem`, made once per problem."""
        entries = self._per_problem.get(problem.id)
        if entries is None:
            if len(self._per_problem) >= len(self.problems):
                self._per_problem.clear()  # a problem under a reused id; never more than one per problem
            expected = list(self.pool.expected_costs(problem.problem).values())  # in pool order, as the actions
            template = np.zeros(self.observation_space.shape, dtype=np.float32)
            template[self._features_at :] = np.asarray(self.features(problem), dtype=np.float32).reshape(-1)
            template.clip(-1.0, 1.0, out=template)
            entries = self._per_problem[problem.id] = (expected, template)
        return entries

    def step(self, action: int):
        if self._info is None:
            self._require_reset("step")
        action = self._checked_action(action)
        _, reward, terminated, truncated, info = self._play(self._turn(action))
        if 1 <= action <= self.K:
            reply = self.text_env.last_reply
            self._record(action, reply, reply_answer(reply))
            calls = info["calls"][self.expert_names[action - 1]]  # only the called expert's count can change
            self._obs[self._calls_at + action - 1] = min(calls / self.max_steps, 1.0)
        observation, info = self._after_step(info)
        return observation, reward, terminated, truncated, info

    def _after_step(self, info: dict[str, Any]) -> tuple[np.ndarray, dict[str, Any]]:
        """The observation and the info of the state the text env is in now (`info`, its latest info, to which
        the routing entries are added: the text env makes a new one every step). Only the entries that changed
        are written over the episode's array (the called expert's count is written by `step`), and the
        experts' entries of the mask only when the step limit or the spend that decide them changed (a
        subclass sets those of its own actions)."""
        self._info = info
        turn, cost, threshold = info["turn"], info["cost_usd"], info["threshold_usd"]
        inputs = (turn >= self.max_steps - 1, cost)
        if inputs != self._mask_inputs:
            self._mask_inputs = inputs
            left = threshold - cost
            # An expert while its expected cost fits what is left; none on the last step (only submitting pays).
            self._mask[1 : self.K + 1] = False if inputs[0] else [within_budget(e, left) for e in self._expected]
        obs = self._obs
        remaining = (threshold - cost) / self._scale
        obs[5] = 1.0 if remaining > 1.0 else (-1.0 if remaining < -1.0 else remaining)  # `_clip`, inlined
        if not self._answers_seen:  # the answer entries change only when an answer comes in
            obs[self._source_at : self._routing_size] = self._answer_block()
            self._answers_seen = True
        step = turn / self.max_steps
        obs[self._turn_at] = step if step < 1.0 else 1.0  # the step's entry sits among the answer entries
        info["candidate"], info["action_mask"] = self._candidate, self._mask.copy()
        return obs.copy(), info

    def _play(self, turn: AnswerAction | CallAction) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        """Step the text env with a turn of this env's making, in the checked form the text env would give it
        (the query stripped), so that it neither parses nor checks it again. (An answer turn is `\\boxed{...}`:
        nothing to strip. A problem of blanks makes an empty query, which the text env's own checks refuse.)"""
        if type(turn) is AnswerAction:
            return self.text_env.step_checked(turn, answer_text(turn.text))
        query = turn.query.strip()
        if not query:
            return self.text_env.step(turn)
        checked = turn if query is turn.query else CallAction(turn.expert, query)
        return self.text_env.step_checked(checked, call_text(turn.expert, turn.query))

    def _turn(self, action: int) -> AnswerAction | CallAction:
        """The text env's turn for an action in range: submit the candidate, or ask expert `action`."""
        if action == 0:
            return AnswerAction(f"\\boxed{{{self._candidate}}}")
        return CallAction(self.expert_names[action - 1], self.text_env.problem.problem)

    def _record(self, expert: int, reply: Any, answer: str | None) -> None:
        """Take in expert `expert`'s reply and the final answer it states: an answer becomes the candidate."""
        if answer is not None:
            self._candidate, self._source = answer, expert
            if not any(self._same(answer, kept) for kept in self._distinct):
                self._distinct.append(answer)  # answers up to equivalence, kept as they come
            self._latest[expert] = answer
            self._answers_seen = False

    def _require_reset(self, method: str) -> None:
        if self._info is None:
            raise ResetNeeded(f"call reset() before {method}(): the routing env has no episode yet")

    def _checked_action(self, action: Any) -> int:
        """`action` as an int in range; ValueError for anything that is not an integer in range."""
        if type(action) is int and 0 <= action < self.action_space.n:
            return action  # the common case, checked first: this runs every step
        value, last = action, self.action_space.n - 1
        if isinstance(value, np.ndarray) and value.size == 1 and value.dtype.kind in "iu":
            value = value.reshape(-1)[0]
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise ValueError(f"action must be an integer in 0..{last}, got {action!r:.80} ({type(action).__name__})")
        if not 0 <= int(value) <= last:
            raise ValueError(f"action must be in 0..{last}, got {int(value)}")
        return int(value)

    def action_masks(self) -> np.ndarray:
        """True where an action is allowed: submitting always; an expert while affordable and steps remain."""
        self._require_reset("action_masks")
        return self._mask.copy()

    def _answer_block(self) -> np.ndarray:
        """The observation's answer entries (candidate source one-hot, agreement with the controller's own
        answer, distinct answers, the step's entry left 0, agreement per answerer), made once per state."""
        key = (self._source, len(self._distinct), tuple(self._agreement()))
        block = self._answer_entries.get(key)
        return self._new_answer_block(key) if block is None else block

    def _new_answer_block(self, key: tuple[int, int, tuple[float, ...]]) -> np.ndarray:
        """`_answer_block` of a state not met before (its key: the candidate's source, the number of distinct
        answers, the agreement per answerer), remembered."""
        source_index, distinct_answers, agreement = key
        n = self.K + 1
        source = [0.0] * n
        source[source_index] = 1.0
        agrees_with_own = float(agreement[0] > 0)  # the candidate agrees with the controller's own answer
        distinct = min(distinct_answers / n, 1.0)
        block = np.array([*source, agrees_with_own, distinct, 0.0, *agreement], dtype=np.float32)
        if len(self._answer_entries) >= 4096:  # bounded for large pools, whose states are many
            self._answer_entries.clear()
        self._answer_entries[key] = block
        return block

    def _agreement(self) -> list[float]:
        """Per answerer: 1 if its answer agrees with the candidate, -1 if not, 0 if not asked (self-consistency
        across experts is the signal a controller has of which answer to trust)."""
        agreement = [0.0] * (self.K + 1)
        for source, answer in self._latest.items():
            same = source == self._source or self._same(answer, self._candidate)
            agreement[source] = 1.0 if same else -1.0
        return agreement

    def _same(self, a: str, b: str) -> bool:
        """Whether two stated answers are equivalent, decided once per pair and episode within the text env's
        `verify_timeout` (each step compares the candidate with every kept answer again). The checks are the
        answer groups' (`answer_groups.equivalent`), so a pair settled once in the process, by this env or by
        v1's groups, is not checked again; a TIMEOUT counts as different for the rest of the episode."""
        if a == b:
            return True
        key = (a, b) if a < b else (b, a)
        verdict = self._verdicts.get(key)
        if verdict is None:  # settled verdicts are shared process-wide (`answer_groups.equivalent`)
            verdict = self._verdicts[key] = equivalent(a, b, self.text_env.verify_timeout)
        return verdict

    def render(self) -> str | None:
        return self.text_env.render()

    def close(self) -> None:
        self.text_env.close()
        super().close()


def _clip(value: float) -> float:
    return min(max(value, -1.0), 1.0)

"""`CORL-Math-v0`: the multi-turn text environment of CoRL."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np

from corl_gym import verify
from corl_gym.budget import BudgetSpec, reward, validate_penalty, within_budget
from corl_gym.data import Problem, load_problems
from corl_gym.envs.env_text import EnvText
from corl_gym.envs.episode import Episode, Turn
from corl_gym.envs.router_view import RouterView
from corl_gym.envs.spaces import UnicodeText, token_space
from corl_gym.envs.untrusted import MAX_ACTION_CHARS, read_action
from corl_gym.experts import ExpertReply, Pool, load_pool
from corl_gym.experts.base import amount, billable_reply
from corl_gym.protocol import (
    PROMPT_STYLES,
    AnswerAction,
    CallAction,
    InvalidAction,
    RosterEntry,
    call_failure_text,
    corrective_message,
)

MAX_OBSERVATION_CHARS = 10_000_000
_CUT_NOTE = f"\n[the rest was cut: the context holds at most {MAX_OBSERVATION_CHARS:,} characters]"


class CORLMathEnv(gym.Env):
    """A controller LLM solves one math problem per episode, alone or by calling paid expert LLMs.

    **Episode.** `reset` draws a problem (uniformly, from `self.np_random`) and a budget mode (fixed by
    `budget`, or drawn per episode when `budget="mixed"`). Each step is one controller turn. The episode
    terminates when the controller answers and is truncated after `max_turns` turns without an answer.
    `reset(options={"problem_id": ..., "problem_index": ..., "budget": ...})` pins the problem or budget.

    **Observation.** Text mode (no tokenizer): the exact text the controller continues from, a `str`
    (space `UnicodeText`): the system prompt (expert roster with descriptions and prices, the budget mode
    and its dollar threshold, the grammar, an example), the problem, then every turn and every block the
    env appended, never cut at the front. The text context holds at most `MAX_OBSERVATION_CHARS`
    characters: an expert reply that would overflow it is cut to fit (its end replaced by a note saying
    so), the episode is truncated (reward 0) once the context has no room left for another turn, and
    `reset` raises ValueError for a problem whose prompt leaves no such room. Token mode (`tokenizer=`
    given): the prompt is rendered with the tokenizer's chat template and the observation is the int64
    array of the whole context's token ids (space `Sequence(Discrete(vocab), stack=True)`); the
    controller's own ids are appended verbatim, never re-tokenised.

    **Prompt style.** `prompt_style="full"` (default) is the prompt above, for a controller that reads
    its instructions (an instruction-tuned LLM); it describes the answer tag without a filled example,
    so an example can never be mistaken for the answer the controller must copy from a reply.
    `"compact"` is for small controllers that learn the grammar by SFT: the system prompt holds only the
    budget mode and threshold, the expert names and prices, and the grammar in one line of words (no
    tag, no example; about a sixth of the full prompt's tokens), the user turn ends with
    `<budget mode="MODE" left="$THRESHOLD"/>` (the budget next to the first decision), and a response
    block is `<response expert="NAME">reply</response>` plus `<budget spent=... left=.../>`. The action grammar,
    costs, reward and info are the same in both styles.

    **Action.** One turn of text (`str`, at most `MAX_ACTION_CHARS` characters; a `str` subclass is copied to
    a plain `str` first and every check runs on the copy, so its own methods cannot lie or hang), or in token
    mode its token ids (integers; ids outside the vocabulary are dropped). Grammar (`corl_gym.protocol`):
    `<think>...</think>` optional, then `<call expert="NAME">sub-query</call>` or `<answer>...</answer>`; the
    first complete action counts and the rest of the turn is ignored. A call sends only the sub-query to the
    expert and appends `<response expert="NAME">reply</response>` plus a
    `<budget spent=... threshold=... remaining=.../>` line. The reply is untrusted text: inside it, every `<`
    that could open or close one of the env's own tags (`response`, `budget`, `error`, in any case) is written
    `&lt;` (`corl_gym.protocol.escape_reply`), in text and token mode alike, so a reply cannot end its block
    early or forge a budget line or an error; nothing else in it changes. Anything else (no tag, unknown
    expert, empty query, unclosed tag) appends a fixed `<error>` message, counts as a turn and is named in
    `info["action_error"]`. So is a turn that cannot be text: in text mode a non-`str` action
    (`malformed_tag`), in token mode ids that are not integers (`malformed_tag`, e.g. 1.5, NaN or inf), and in
    either mode a `str` or parsed turn over `MAX_ACTION_CHARS` (`too_long`); none of it is appended. With
    `hard_cap=True` a call whose expected cost exceeds the remaining budget is refused the same way
    (`over_cap`), at no cost.

    A scripted policy may also pass an already parsed action, a `corl_gym.protocol` `CallAction`,
    `AnswerAction` or `InvalidAction`, in either mode: it is never re-parsed, so its query or answer may
    hold any text, grammar tags included. It is checked as a parsed turn would be (known expert, text
    not empty once stripped, fields of type `str`, canonical text within `MAX_ACTION_CHARS`) and its
    canonical text (`<call expert="NAME">query</call>` or `<answer>text</answer>`) is appended to the
    context as the turn.

    **Reward.** 0 on every step but the last. On the answer: `correct * penalty(cost, threshold)`;
    `penalty="hard"` (default, the paper's gate `1[cost <= threshold]`), `"soft"` or `"linear"` (see
    `corl_gym.budget`), plus `format_reward` when the episode had no invalid turn and the answer has a
    `\\boxed{}` value. Truncation earns what a wrong answer earns: 0 under `hard` and `soft`; under `linear`
    every ending pays its spend, `-weight * cost / max(threshold, min_scale_usd)` (a correct answer
    `1 - weight * cost / ...`), so running out the turns never beats answering. Correctness is
    `corl_gym.verify.check` against the gold answer. Expert calls cost dollars at the pool's prices from the
    reply's token usage; the controller's own tokens are free, so answering without a call costs $0. A failed
    call is shown as a failed response and costs what was billed. Expert replies are untrusted: one that is
    not an `ExpertReply`, whose text is not a `str`, or whose `cost_usd`, `prompt_tokens` or
    `completion_tokens` is not a finite non-negative number is a failed call (`info["expert_error"]` says what
    was wrong) that charges only the amounts that are valid; charging never raises.

    **Info** (every step, and at reset): `problem_id`, `budget_mode`, `threshold_usd`, `expert_names`, `prices`
    (name -> (USD per 1M input, per 1M output)), `turn`, `cost_usd` (cumulative), `step_cost_usd`,
    `controller_cost_usd` (the controller's own tokens, charged only when the pool's `charge_controller` is set
    and an LLM controller reports them through `charge_controller`), `calls` (expert -> count), `prompt_tokens`,
    `completion_tokens` (experts' tokens, cumulative), `verdict` (a `Verdict` name once answered, else None),
    `correct`, `over_budget` (`cost_usd` past `threshold_usd`: not `budget.within_budget`), `action_error` (a
    reason code or None), `expert_error` (or None). In token mode also `env_token_ids`: the ids of the text the
    env appended this step (at reset: the prompt's ids).

    **Routers.** `last_reply` is the checked reply to the latest step's call (None when the step made
    none); `router_view()` is all a router may read and do (`corl_gym.envs.router_view`).

    **Arguments.** `dataset` (a name of `corl_gym.data` or a JSONL path; default the pool's own dataset,
    else `synthetic`), `pool` (a name, a YAML path or a `Pool`; default `sim-paper`), `budget` (`low`,
    `medium`, `high`, `mixed` or dollars), `penalty`, `penalty_kwargs`, `max_turns` (4), `tokenizer`,
    `hard_cap`, `format_reward`, `limit` (first N problems), `problems` (a list of `Problem`, overrides
    `dataset`), `expert_seed` (the seed of simulated experts), `verify_timeout` (seconds),
    `prompt_style` (`full` or `compact`).
    """

    metadata = {"render_modes": ["ansi"], "render_fps": 1}

    def __init__(
        self,
        dataset: str | None = None,
        pool: str | Pool = "sim-paper",
        budget: str | float = "mixed",
        penalty: str = "hard",
        penalty_kwargs: dict[str, float] | None = None,
        max_turns: int = 4,
        tokenizer: Any = None,
        hard_cap: bool = False,
        format_reward: float = 0.0,
        limit: int | None = None,
        problems: Sequence[Problem] | None = None,
        expert_seed: int = 0,
        verify_timeout: float = 2.0,
        render_mode: str | None = None,
        prompt_style: str = "full",
    ):
        if max_turns < 1:
            raise ValueError(f"max_turns must be >= 1, got {max_turns}")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be one of {self.metadata['render_modes']}, got {render_mode!r}")
        validate_penalty(penalty)
        if prompt_style not in PROMPT_STYLES:
            raise ValueError(f"prompt_style must be one of {', '.join(PROMPT_STYLES)}, got {prompt_style!r}")
        self.prompt_style = prompt_style
        self._owns_pool = not isinstance(pool, Pool)
        self.pool: Pool = load_pool(pool, seed=expert_seed) if self._owns_pool else pool
        self.budget_spec = BudgetSpec(budget, self.pool.budgets)
        self.problems: list[Problem] = list(problems) if problems is not None else load_problems(
            dataset or self.pool.dataset or "synthetic", limit=limit
        )
        if not self.problems:
            raise ValueError("the env needs at least one problem; the dataset is empty")
        self.pool.check_covers(self.problems)
        self._index = {p.id: i for i, p in enumerate(self.problems)}
        self.penalty, self.penalty_kwargs = penalty, dict(penalty_kwargs or {})
        self.max_turns, self.hard_cap, self.format_reward = max_turns, hard_cap, format_reward
        self.tokenizer, self.verify_timeout, self.render_mode = tokenizer, verify_timeout, render_mode
        self.expert_names = self.pool.expert_names()
        roster = [
            RosterEntry(n, e.spec.description, e.spec.price_in, e.spec.price_out) for n, e in self.pool.experts.items()
        ]
        self._prices = {e.name: (e.price_in, e.price_out) for e in roster}  # copied into every info
        self._text = EnvText(roster, prompt_style, tokenizer)
        if tokenizer is None:
            self.observation_space = UnicodeText(MAX_OBSERVATION_CHARS)
            self.action_space = UnicodeText(MAX_ACTION_CHARS)
        else:
            self.observation_space = token_space(len(tokenizer))
            self.action_space = token_space(len(tokenizer))
        # Room the text context keeps for one more turn: the turn itself, then the env's longest block
        # (a corrective message lists the experts, maybe twice; a response block's framing and cut note).
        self._turn_room = MAX_ACTION_CHARS + 2_000 + 3 * len(", ".join(self.expert_names))
        self._episode: Episode | None = None
        self.last_reply: ExpertReply | None = None  # public: wrappers and the router view read it

    # ----------------------------------------------------------------------------------------- reset
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        options = options or {}
        problem = self._choose_problem(options)
        budget = self.budget_spec.draw(self.np_random, options.get("budget"))
        text = self._text.opening(problem.problem, budget.mode, budget.threshold_usd)
        ids = None if self.tokenizer is None else self._encode(text)
        if ids is None and len(text) > MAX_OBSERVATION_CHARS - self._turn_room:
            raise ValueError(
                f"problem {problem.id!r}: its prompt has {len(text):,} characters, too many for a text context of "
                f"{MAX_OBSERVATION_CHARS:,} with room for a turn"
            )
        calls = dict.fromkeys(self.expert_names, 0)
        self._episode = Episode(problem, budget.mode, budget.threshold_usd, text, ids, calls=calls)
        info = self._info(step_cost=0.0, action_error=None, expert_error=None, verdict=None, correct=False)
        if ids is not None:
            info["env_token_ids"] = list(ids)
        return self._observation(), info

    def _choose_problem(self, options: dict[str, Any]) -> Problem:
        if "problem_id" in options:
            if options["problem_id"] not in self._index:
                raise ValueError(
                    f"problem_id {options['problem_id']!r} is not in this env's {len(self.problems)} problems"
                )
            return self.problems[self._index[options["problem_id"]]]
        if "problem_index" in options:
            return self.problems[int(options["problem_index"]) % len(self.problems)]
        return self.problems[int(self.np_random.integers(len(self.problems)))]

    # ------------------------------------------------------------------------------------------ step
    def step(self, action: str | Sequence[int] | np.ndarray | CallAction | AnswerAction | InvalidAction):
        return self._play(self.begin_step(action))

    def step_checked(self, action: CallAction | AnswerAction, text: str):
        """`step` for a turn its caller made itself in checked form (a routing env's): `action` is what
        `step` would make of the turn `text` (a known expert and a stripped, non-empty query or answer), so
        nothing is parsed or checked again."""
        return self._play(self.begin_step(action, (text, None, action)))

    def _play(self, turn: Turn):
        reply = None
        if isinstance(turn.action, CallAction):
            reply = self.pool.call(turn.action.expert, turn.action.query, self._episode.problem)  # never raises
        return self.finish_step(turn, reply)

    # The step in two halves, for a caller that makes the expert calls of many envs at once (the vector
    # env): `begin_step(action)` reads the turn; when `turn.action` is a `CallAction`, the caller gets its
    # reply (`pool.call_many`) and passes it to `finish_step(turn, reply)`, which returns what `step` does.
    # `step(action)` is `finish_step(turn, pool.call(...))` of `begin_step(action)`.
    def begin_step(self, action: Any, read: tuple[str, list[int] | None, Any] | None = None) -> Turn:
        """Parse the turn (unless `read` holds it parsed); a call that the hard cap refuses becomes an
        invalid action here."""
        episode = self._episode
        if episode is None or episode.done:
            raise RuntimeError("the episode is over (or never began): call reset() before step()")
        text, ids, parsed = read or read_action(action, self.expert_names, self.tokenizer, self._encode)
        if isinstance(parsed, CallAction) and self.hard_cap:
            expected = self.pool.experts[parsed.expert].spec.expected_cost(parsed.query)
            if not within_budget(expected, episode.threshold_usd - episode.cost_usd):
                parsed = InvalidAction("over_cap", f"{parsed.expert} is expected to cost ${expected:.6f}")
        return Turn(text, ids, parsed)

    def finish_step(self, turn: Turn, reply: ExpertReply | None):
        """Play a turn from `begin_step`, with the reply to its call (None when it makes none)."""
        episode = self._episode
        episode.turn += 1
        self._append(turn.text, turn.token_ids)
        step_cost, verdict, correct, expert_error, terminated, rew = 0.0, None, False, None, False, 0.0
        action = turn.action
        controller_cost, episode.pending_controller_cost = episode.pending_controller_cost, 0.0
        episode.cost_usd += controller_cost
        episode.controller_cost_usd += controller_cost
        self.last_reply = None
        if isinstance(action, CallAction):
            reply = self.last_reply = billable_reply(reply, action.expert, episode.cost_usd)
            step_cost, expert_error = self._charge(action.expert, reply)
            env_ids = self._append(self._response_block(action.expert, reply))
        elif isinstance(action, AnswerAction):
            verdict, correct = self._grade(action.text)
            rew = self._final_reward(correct, action.text)
            terminated, env_ids = True, (None if episode.token_ids is None else [])  # nothing appended
        else:
            episode.invalid_turns += 1
            env_ids = self._append(corrective_message(action, self.expert_names))
        context_full = episode.token_ids is None and len(episode.text) > MAX_OBSERVATION_CHARS - self._turn_room
        truncated = not terminated and (episode.turn >= self.max_turns or context_full)
        if truncated:  # no answer: what a wrong one earns (0, or minus the spend under `linear`)
            rew = reward(False, episode.cost_usd, episode.threshold_usd, self.penalty, **self.penalty_kwargs)
        episode.done = terminated or truncated
        error = action.reason if isinstance(action, InvalidAction) else None
        info = self._info(step_cost + controller_cost, error, expert_error, verdict, correct)
        if env_ids is not None:
            info["env_token_ids"] = env_ids
        return self._observation(), rew, terminated, truncated, info

    def charge_controller(self, cost_usd: float) -> bool:
        """Charge the controller's own tokens for the turn about to be stepped (an API model that
        reports its usage) when the pool says so (`charge_controller: true`). The cost counts against
        the budget like an expert call's, in this step's `step_cost_usd`, and accumulates in
        `info["controller_cost_usd"]`. Returns whether it was charged: a cost that is not a finite
        non-negative number is not."""
        cost = amount(cost_usd)
        if self._episode is None or not self.pool.charge_controller or cost is None:
            return False
        if not math.isfinite(self._episode.cost_usd + self._episode.pending_controller_cost + cost):
            return False
        self._episode.pending_controller_cost += cost
        return True

    def _charge(self, expert: str, reply: ExpertReply) -> tuple[float, str | None]:
        """Charge a checked reply (`billable_reply`), whose amounts are finite and non-negative."""
        episode = self._episode
        episode.cost_usd += reply.cost_usd
        episode.calls[expert] += 1
        episode.prompt_tokens += reply.prompt_tokens
        episode.completion_tokens += reply.completion_tokens
        return reply.cost_usd, reply.error

    def _response_block(self, expert: str, reply: ExpertReply) -> str:
        """The reply (or the failure) with the spend line; in text mode its body is cut to fit the context."""
        episode = self._episode
        body = reply.text if reply.error is None else call_failure_text(reply.error)
        block = self._text.response(expert, body, episode.cost_usd, episode.threshold_usd)
        excess = len(episode.text) + len(block) - MAX_OBSERVATION_CHARS
        if episode.token_ids is None and excess > 0:
            body = body[: max(len(body) - excess - len(_CUT_NOTE), 0)] + _CUT_NOTE
            block = self._text.response(expert, body, episode.cost_usd, episode.threshold_usd)
        return block

    def _grade(self, answer_text: str) -> tuple[str, bool]:
        problem = self._episode.problem
        pred = verify.extract_answer(answer_text) or answer_text
        verdict = verify.check(pred, problem.answer, timeout=self.verify_timeout)
        return verdict.name, verdict is verify.Verdict.CORRECT

    def _final_reward(self, correct: bool, answer_text: str) -> float:
        episode = self._episode
        value = reward(correct, episode.cost_usd, episode.threshold_usd, self.penalty, **self.penalty_kwargs)
        if self.format_reward and episode.invalid_turns == 0 and verify.extract_answer(answer_text) is not None:
            value += self.format_reward
        return float(value)

    def _append(self, text: str, ids: list[int] | None = None) -> list[int] | None:
        """Extend the context; returns the ids appended in token mode (encoding `text` unless given)."""
        episode = self._episode
        episode.text += text
        if episode.token_ids is None:
            return None
        ids = self._encode(text) if ids is None else ids
        episode.token_ids.extend(ids)
        return list(ids)

    def _encode(self, text: str) -> list[int]:
        if not text:
            return []
        # Lone surrogates cannot be encoded to bytes; they become U+FFFD instead of crashing the step.
        safe = text.encode("utf-8", "replace").decode("utf-8")
        return list(self.tokenizer.encode(safe, add_special_tokens=False))

    def _observation(self):
        episode = self._episode
        if episode.token_ids is None:
            return episode.text
        return np.asarray(episode.token_ids, dtype=np.int64)

    def _info(self, step_cost: float, action_error, expert_error, verdict, correct: bool) -> dict[str, Any]:
        episode = self._episode
        return {
            "problem_id": episode.problem.id,
            "budget_mode": episode.mode,
            "threshold_usd": episode.threshold_usd,
            "expert_names": list(self.expert_names),
            "prices": dict(self._prices),
            "turn": episode.turn,
            "cost_usd": episode.cost_usd,
            "step_cost_usd": step_cost,
            "controller_cost_usd": episode.controller_cost_usd,
            "calls": dict(episode.calls),
            "prompt_tokens": episode.prompt_tokens,
            "completion_tokens": episode.completion_tokens,
            "verdict": verdict,
            "correct": bool(correct),
            "over_budget": not within_budget(episode.cost_usd, episode.threshold_usd),
            "action_error": action_error,
            "expert_error": expert_error,
        }

    # ----------------------------------------------------------------- routers, render and close
    @property
    def problem(self) -> Problem | None:
        """The current episode's problem (None before the first reset)."""
        return None if self._episode is None else self._episode.problem

    def router_view(self) -> RouterView:
        """What a router may read of this env, and the calls it may make (`RouterView`'s docstring)."""
        return RouterView(self)

    def render(self) -> str | None:
        if self.render_mode != "ansi" or self._episode is None:
            return None
        e = self._episode
        status = f"[turn {e.turn}/{self.max_turns} | {e.mode} ${e.cost_usd:.6f} of ${e.threshold_usd:.6f}]"
        return f"{e.text}\n{status}\n"

    def close(self) -> None:
        if self._owns_pool:
            self.pool.close()
        super().close()

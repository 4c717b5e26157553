"""Checks on the turns `CORLMathEnv` is handed and cannot trust: parsed actions from a scripted policy,
text from a model, token ids from a sampler. Each check turns bad input into an invalid turn that the env
shows and counts; none of them raises. (Expert replies are checked by `corl_gym.experts.base`:
`checked_reply`, and `billable_reply` for a reply charged to an episode.)
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from corl_gym.protocol import (
    ANSWER_CLOSE,
    ANSWER_OPEN,
    CALL_CLOSE,
    INVALID_REASONS,
    AnswerAction,
    CallAction,
    InvalidAction,
    parse_action,
)

MAX_ACTION_CHARS = 100_000
PARSED_ACTIONS = (CallAction, AnswerAction, InvalidAction)


def read_action(
    action: Any, expert_names: Sequence[str], tokenizer: Any, encode: Callable[[str], list[int]]
) -> tuple[str, list[int] | None, CallAction | AnswerAction | InvalidAction]:
    """A turn handed to the env: its text, its ids in token mode (`tokenizer` given; `encode` makes ids of
    text), and its action. Never raises: what cannot be a turn is an invalid one with nothing appended."""
    token_mode = tokenizer is not None
    parsed = None
    if isinstance(action, PARSED_ACTIONS):
        text, parsed = checked_action(action, expert_names)
    elif isinstance(action, str):
        text = plain_str(action)  # a subclass's own methods may lie or hang: checks run on a plain copy
    elif not token_mode:
        detail = f"an action is a str or a corl_gym.protocol action, got {type(action).__name__[:60]}"
        return "", None, InvalidAction("malformed_tag", detail)
    else:
        ids = token_ids(action)
        if ids is None:
            return "", [], InvalidAction("malformed_tag", "token ids must be integers")
        ids = [t for t in ids if 0 <= t < len(tokenizer)]  # out-of-vocabulary ids cannot be decoded
        text = tokenizer.decode(ids, skip_special_tokens=False)
        return text, ids, parse_action(text, expert_names)
    if len(text) > MAX_ACTION_CHARS:  # a str or parsed turn, in either mode (sampled ids are capped by their generator)
        detail = f"the turn had {len(text):,} characters; the limit is {MAX_ACTION_CHARS:,}"
        return "", ([] if token_mode else None), InvalidAction("too_long", detail)
    if parsed is None:
        parsed = parse_action(text, expert_names)
    return text, (encode(text) if token_mode else None), parsed


def plain_str(value: Any) -> str | None:
    """`value` copied to a plain `str` when it is a `str` (a subclass included), else None. A subclass's own
    methods (`find`, `__len__`, `strip`, `__eq__`, ...) may lie or never return; every check runs on the copy."""
    if type(value) is str:
        return value  # a plain str already: nothing to copy
    return str.__str__(value) if isinstance(value, str) else None


def checked_action(
    action: CallAction | AnswerAction | InvalidAction, expert_names: Sequence[str]
) -> tuple[str, CallAction | AnswerAction | InvalidAction]:
    """A parsed action given directly: its canonical text, and the action checked as a parsed turn is."""
    if isinstance(action, InvalidAction):
        reason, detail = plain_str(action.reason), plain_str(action.detail)
        known = reason is not None and reason in INVALID_REASONS
        return "", InvalidAction(reason if known else "malformed_tag", (detail or "")[:200])
    if isinstance(action, AnswerAction):
        text = plain_str(action.text)
        if text is None:
            return "", InvalidAction("malformed_tag", "an AnswerAction's text must be a str")
        content = text.strip()
        if not content:
            checked: AnswerAction | InvalidAction = InvalidAction("empty_answer")
        else:  # a frozen action already in canonical form is kept: a routing env sends one every step
            canonical = type(action) is AnswerAction and content is action.text  # a plain str, nothing stripped
            checked = action if canonical else AnswerAction(content)
        return answer_text(text), checked
    expert, query = plain_str(action.expert), plain_str(action.query)
    if expert is None or query is None:
        return "", InvalidAction("malformed_tag", "a CallAction's expert and query must be str")
    text = call_text(expert, query)
    if expert not in expert_names:
        names = ", ".join(expert_names)
        return text, InvalidAction("unknown_expert", f"{expert[:60]!r} is not one of: {names}")
    query_text = query.strip()
    if not query_text:
        return text, InvalidAction("empty_query", f"the call to {expert} had no query")
    canonical = type(action) is CallAction and expert is action.expert and query_text is action.query
    return text, action if canonical else CallAction(expert, query_text)


def answer_text(text: str) -> str:
    """The canonical turn of an answer: the text a parsed `AnswerAction` stands for."""
    return f"{ANSWER_OPEN}{text}{ANSWER_CLOSE}"


def call_text(expert: str, query: str) -> str:
    """The canonical turn of a call: the text a parsed `CallAction` stands for."""
    return f'<call expert="{expert}">{query}{CALL_CLOSE}'


def token_ids(action: Any) -> list[int] | None:
    """Token ids as ints, or None unless every entry is an integer (a whole float counts; 1.5, NaN and inf do
    not). Ids too large for int64 are kept as Python ints, out of any vocabulary."""
    try:
        array = np.asarray(action)
        if array.dtype.kind in "iu":
            return array.reshape(-1).tolist()
        values = array.reshape(-1).tolist()
    except Exception:  # noqa: BLE001 - ragged or exotic input is not a list of ids
        return None
    ids = []
    for value in values:
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            return None
        try:
            if not isinstance(value, numbers.Integral) and not (math.isfinite(value) and float(value).is_integer()):
                return None
        except (OverflowError, ValueError):  # a Fraction past float's range
            return None
        ids.append(int(value))
    return ids

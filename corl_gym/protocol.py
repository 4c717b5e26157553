"""The controller's action grammar and the budget-conditioned system prompt.

One action per turn::

    <think>free reasoning</think>                 optional, ignored by the env
    <call expert="NAME">sub-query</call>          ask an expert; only the sub-query is sent
    <answer>final answer, ideally \\boxed{...}</answer>   end the episode

Parsing rules, fixed so that a learner can rely on them:

- Tags are matched exactly (lower case, no spaces inside the tag name); the `expert` attribute may use
  single or double quotes and spaces around `=`.
- Closed `<think>...</think>` blocks are skipped, so reasoning may mention tags freely.
- The first complete action wins: the earliest `</call>` or `</answer>` closes it, its opening tag is the
  last one before it, and everything after the closing tag is ignored.
- Anything else is an `InvalidAction` with a reason code (`INVALID_REASONS`) and a fixed corrective
  message that the env shows the controller.

The parser scans with `str.find`, never a backtracking regex over the whole text, so a 100k-character or
adversarial action costs linear time.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

STOP_STRINGS: tuple[str, ...] = ("</call>", "</answer>")

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
CALL_OPEN, CALL_CLOSE = "<call", "</call>"
ANSWER_OPEN, ANSWER_CLOSE = "<answer>", "</answer>"

# Bounded to the opening tag itself: `[^>]{0,200}` keeps the match linear and short.
_CALL_TAG = re.compile(r"<call\s+expert\s*=\s*(?:\"([^\"<>]{0,200})\"|'([^'<>]{0,200})')\s*>")

# The tags of the blocks the env writes around and after expert replies. A reply is untrusted text: inside
# it, every `<` that could open or close one of these (any case, spaces or a slash allowed) is written
# `&lt;`, so the env's own blocks are the only ones in the context (`escape_reply`). A new block tag
# the env writes must be added here.
ENV_TAGS: tuple[str, ...] = ("response", "budget", "error")
_ENV_TAG_START = re.compile(r"<(?=\s*/?\s*(?:" + "|".join(ENV_TAGS) + "))", re.IGNORECASE)

INVALID_REASONS: dict[str, str] = {
    "no_action": "Your turn contained no action.",
    "unclosed_tag": "Your turn opened a tag it did not close.",
    "malformed_tag": "Your turn had a malformed tag.",
    "unknown_expert": "Your turn called an expert that does not exist.",
    "empty_query": "Your turn called an expert with an empty query.",
    "empty_answer": "Your turn gave an empty answer.",
    "over_cap": "That call would exceed your remaining budget, so it was refused.",
    "too_long": "Your turn was too long.",
}


@dataclass(frozen=True)
class CallAction:
    """`<call expert="NAME">query</call>`: send `query`, and only it, to the expert named `expert`."""

    expert: str
    query: str


@dataclass(frozen=True)
class AnswerAction:
    """`<answer>text</answer>`: end the episode; `text` is graded (its `\\boxed{}` value when it has one)."""

    text: str


@dataclass(frozen=True)
class InvalidAction:
    """A turn that is no action: `reason` is a key of `INVALID_REASONS`, `detail` what the env saw."""

    reason: str
    detail: str = ""


Action = CallAction | AnswerAction | InvalidAction


def parse_action(text: str, expert_names: Iterable[str] | None = None) -> Action:
    """Parse one controller turn. Never raises on any string; `expert_names=None` accepts any name."""
    if not isinstance(text, str):
        return InvalidAction("malformed_tag", f"an action is a string, got {type(text).__name__}")
    visible = _blank_thinking(str.__str__(text))  # a str subclass's own methods may lie or hang: a plain copy
    end_call, end_answer = visible.find(CALL_CLOSE), visible.find(ANSWER_CLOSE)
    ends = [e for e in (end_call, end_answer) if e >= 0]
    if not ends:
        return _no_closing_tag(visible)
    end = min(ends)
    if end == end_answer:
        return _parse_answer(visible, end)
    return _parse_call(visible, end, expert_names)


def _blank_thinking(text: str) -> str:
    """Replace each closed think block by spaces (keeping offsets); an unclosed one is left as is."""
    pieces, pos = [], 0
    while True:
        start = text.find(THINK_OPEN, pos)
        if start < 0:
            break
        stop = text.find(THINK_CLOSE, start)
        if stop < 0:
            break
        stop += len(THINK_CLOSE)
        pieces.append(text[pos:start])
        pieces.append(" " * (stop - start))
        pos = stop
    pieces.append(text[pos:])
    return "".join(pieces)


def _no_closing_tag(visible: str) -> InvalidAction:
    for opening in (CALL_OPEN, ANSWER_OPEN, THINK_OPEN):
        if opening in visible:
            return InvalidAction("unclosed_tag", f"{opening}...> was never closed")
    return InvalidAction("no_action", "")


def _parse_answer(visible: str, end: int) -> Action:
    start = visible.rfind(ANSWER_OPEN, 0, end)
    if start < 0:
        return InvalidAction("malformed_tag", "</answer> without <answer>")
    content = visible[start + len(ANSWER_OPEN) : end].strip()
    if not content:
        return InvalidAction("empty_answer", "")
    return AnswerAction(content)


def _parse_call(visible: str, end: int, expert_names: Iterable[str] | None) -> Action:
    start = visible.rfind(CALL_OPEN, 0, end)
    if start < 0:
        return InvalidAction("malformed_tag", "</call> without <call expert=\"NAME\">")
    tag = _CALL_TAG.match(visible, start, end)
    if tag is None:
        return InvalidAction("malformed_tag", 'the opening tag must read <call expert="NAME">')
    expert = (tag.group(1) if tag.group(1) is not None else tag.group(2)).strip()
    names = None if expert_names is None else list(expert_names)
    if names is not None and expert not in names:
        return InvalidAction("unknown_expert", f"{expert[:60]!r} is not one of: {', '.join(names)}")
    query = visible[tag.end() : end].strip()
    if not query:
        return InvalidAction("empty_query", f"the call to {expert} had no query")
    return CallAction(expert, query)


def stated_answer(text: str) -> str:
    """The answer a reply or turn states: its last `\\boxed{}` value, else the whole text stripped."""
    from corl_gym.verify import extract_answer

    return extract_answer(text) or text.strip()


def corrective_message(action: InvalidAction, expert_names: Iterable[str]) -> str:
    """The fixed text the env appends after an invalid turn: what went wrong and the grammar again."""
    names = ", ".join(expert_names)
    detail = f" ({action.detail})" if action.detail else ""
    return (
        f"\n<error>{INVALID_REASONS.get(action.reason, 'Invalid action.')}{detail} "
        f'Write exactly one action: <call expert="NAME">sub-query</call> with NAME one of {names}, '
        f"or <answer>\\boxed{{your final answer}}</answer>.</error>\n"
    )


def escape_reply(text: str) -> str:
    """`text` with every `<` that could start one of the env's tags (`ENV_TAGS`) written as `&lt;`, so an
    expert's reply cannot close its response block or forge a budget line or an error. Nothing else
    changes: LaTeX, `&`, `<` in inequalities and the grammar's own tags stay as they were."""
    return _ENV_TAG_START.sub("&lt;", text)


def format_response(expert: str, text: str, spent_usd: float, threshold_usd: float) -> str:
    """The block the env appends after a call: the expert's whole reply (`escape_reply`), then the spend so
    far, so the controller can track its budget from the context alone."""
    return (
        f'\n<response expert="{expert}">\n{escape_reply(text)}\n</response>\n'
        f"<budget spent=\"${spent_usd:.6f}\" threshold=\"${threshold_usd:.6f}\" "
        f"remaining=\"${max(threshold_usd - spent_usd, 0.0):.6f}\"/>\n"
    )


def call_failure_text(error: str) -> str:
    """What a failed call's response says instead of a reply; the call still costs what was billed."""
    return f"[the call failed: {error}]"


@dataclass(frozen=True)
class RosterEntry:
    """One line of the system prompt's expert roster."""

    name: str
    description: str
    price_in: float
    price_out: float


def system_prompt(roster: Iterable[RosterEntry], budget_mode: str, threshold_usd: float) -> str:
    """The controller's system prompt: roster with prices, budget mode and dollar threshold, grammar,
    and a worked example. The text is stable: a policy trained on it must see the same words later.

    It never shows a filled answer tag: a controller that has just read an expert's reply and writes
    `<answer>\\boxed{` copies what followed the nearest earlier match of that prefix, and a literal
    example here would be that match instead of the reply."""
    roster = list(roster)
    lines = [
        f"- {e.name}: {e.description} (${e.price_in:g} per 1M input tokens, ${e.price_out:g} per 1M output tokens)"
        for e in roster
    ]
    example_expert = roster[0].name if roster else "EXPERT"
    return (
        "You are a math problem solver that can consult expert models. Solve the problem yourself, or ask "
        "an expert a focused sub-question when that is worth its price.\n\n"
        "Experts:\n" + "\n".join(lines) + "\n\n"
        f"Budget mode: {budget_mode}. Spend at most ${threshold_usd:.4f} on expert calls for this problem: "
        "a correct answer that went over budget earns nothing.\n\n"
        "Each turn, you may think inside <think>...</think>, then write exactly one action:\n"
        '- <call expert="NAME">sub-query</call> sends only the sub-query to that expert; its reply is '
        "added to the conversation with what you have spent so far.\n"
        "- <answer>, then your final answer (ideally in \\boxed), then the closing answer tag: ends the problem.\n\n"
        "Example:\n"
        "<think>The quadratic needs care; a cheap expert can check the roots.</think>\n"
        f'<call expert="{example_expert}">Find the roots of x^2 - 5x + 6 = 0.</call>\n'
        "... after the reply, an answer tag with the roots 2 and 3 ends the problem."
    )


# ------------------------------------------------------------------------------ the compact style
PROMPT_STYLES: tuple[str, ...] = ("full", "compact")


def compact_system_prompt(roster: Iterable[RosterEntry], budget_mode: str, threshold_usd: float) -> str:
    """The `compact` system prompt: budget mode and threshold, expert names and prices, and the grammar
    in words (no literal tag, no example), for small controllers that learn the grammar by SFT. About a
    sixth of `system_prompt`'s tokens; the same grammar and reward."""
    prices = ", ".join(f"{e.name} {e.price_in:g}/{e.price_out:g}" for e in roster)
    return (
        f"Budget {budget_mode}: ${threshold_usd:.4f} for expert calls; a correct answer over budget scores 0.\n"
        f"Experts ($ per 1M tokens in/out): {prices}.\n"
        "Each turn: one call tag (expert name, query) or one answer tag."
    )


def compact_opening(problem: str, budget_mode: str, threshold_usd: float) -> str:
    """The `compact` user turn: the problem, then a budget tag in the response block's form that also
    names the mode. The budget is then the last thing the controller reads before its first turn, as the
    spend is before every later one, instead of only the system prompt's first line."""
    return f'{problem}\n<budget mode="{budget_mode}" left="${max(threshold_usd, 0.0):.6f}"/>'


def compact_response(expert: str, text: str, spent_usd: float, threshold_usd: float) -> str:
    """The `compact` block after a call: the expert's whole reply, then the spend and what is left of the
    threshold (the prompt states the threshold itself)."""
    return (
        f'\n<response expert="{expert}">{escape_reply(text)}</response>\n'
        f'<budget spent="${spent_usd:.6f}" left="${max(threshold_usd - spent_usd, 0.0):.6f}"/>\n'
    )

"""The text `CORL-Math-v0` writes into the controller's context, in the env's prompt style (`full` or
`compact`, `corl_gym.protocol`): the opening of an episode (the budget's system prompt and the problem, in
the tokenizer's chat template when it has one) and the response block after an expert call."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from corl_gym.protocol import (
    RosterEntry,
    compact_opening,
    compact_response,
    compact_system_prompt,
    format_response,
    system_prompt,
)

_KEPT_SYSTEM_PROMPTS = 64  # custom dollar budgets could be many: the prompts of a few are kept


class EnvText:
    """The env's own text for a fixed roster, prompt style and tokenizer (None: text mode)."""

    def __init__(self, roster: Sequence[RosterEntry], prompt_style: str, tokenizer: Any = None):
        self._roster = list(roster)
        self._compact = prompt_style == "compact"
        self._make_system_prompt = compact_system_prompt if self._compact else system_prompt
        self._format_response = compact_response if self._compact else format_response
        self._tokenizer = tokenizer
        self._system_prompts: dict[tuple[str, float], str] = {}  # (mode, threshold) -> its system prompt

    def opening(self, problem: str, mode: str, threshold_usd: float) -> str:
        """The context an episode starts from: the system prompt of its budget, then the problem (in the
        compact style, followed by the budget line next to the first decision)."""
        system = self._system_prompt(mode, threshold_usd)
        user = compact_opening(problem, mode, threshold_usd) if self._compact else problem
        tokenizer = self._tokenizer
        if tokenizer is not None and getattr(tokenizer, "chat_template", None):
            messages = [{"role": "system", "content": system}, {"role": "user", "content": user}]
            return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return f"{system}\n\nProblem:\n{user}\n\n"

    def response(self, expert: str, body: str, spent_usd: float, threshold_usd: float) -> str:
        """The block after a call: `body` (the reply, or the failure) in its response tags, then the spend."""
        return self._format_response(expert, body, spent_usd, threshold_usd)

    def _system_prompt(self, mode: str, threshold_usd: float) -> str:
        """The system prompt of a budget, rendered once: the roster is fixed for the env's life."""
        key = (mode, threshold_usd)
        prompt = self._system_prompts.get(key)
        if prompt is None:
            if len(self._system_prompts) >= _KEPT_SYSTEM_PROMPTS:
                self._system_prompts.clear()
            prompt = self._system_prompts[key] = self._make_system_prompt(self._roster, mode, threshold_usd)
        return prompt

"""A scripted expert for the tests: it answers what it is told and records what it was asked."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from corl_gym.experts import ExpertReply
from corl_gym.experts.base import Expert, ExpertSpec

Reply = ExpertReply | str | Callable[[], Any]


class ScriptedExpert(Expert):
    """Answers every call with `reply`: an `ExpertReply` as given (forged ones included), a `str` (a
    reply with that text, 5 + 5 tokens, $0.0001), or a callable that builds either per call."""

    def __init__(self, spec: ExpertSpec, reply: Reply):
        super().__init__(spec)
        self.reply, self.queries = reply, []

    def call(self, query: str, problem: Any) -> Any:
        self.queries.append(query)
        reply = self.reply() if callable(self.reply) else self.reply
        if isinstance(reply, str):
            return ExpertReply(text=reply, prompt_tokens=5, completion_tokens=5, cost_usd=0.0001)
        return reply

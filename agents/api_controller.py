"""A prompted API model as the controller of `CORL-Math-v0`, with no training.

`ChatController` sends the episode to any OpenAI-compatible chat-completions endpoint (OpenAI, a vLLM or
SGLang server) and writes the model's turn back as the action. It works in text mode: an API model has
its own tokenizer, so there are no shared token ids to keep; the env's text is mapped to chat messages
as it grows:

- system: the env's system prompt (roster, prices, budget, grammar); user: the problem;
- each controller turn is an `assistant` message, and the blocks the env appended after it (an expert's
  response with the spend line, or a corrective error) the next `user` message.

The request carries the grammar's stop strings (`</call>`, `</answer>`). The API strips a matched stop
string from the text, so the controller closes the tag it left open. A failed request (after the
expert layer's retries) becomes an empty turn, which the env counts as an invalid turn: the episode
goes on, as with any malformed action.

Its own tokens are charged at its price (the entry's `price_in` / `price_out`) through its `RouterView`
(`view.charge_controller`) when the pool says so (`charge_controller: true`); otherwise they are free, as the
controller's tokens are in the paper. With a run ledger (`corl-gym bench`), its requests are booked on the
entry's account and count against `--max-spend` like expert calls. As a benchmark policy it is `api:<entry>`,
where `<entry>` names an `openai`-backend entry of the pool (its controller or an expert), which gives the
model, the endpoint, the key variable and the prices.
"""

from __future__ import annotations

from typing import Any

from corl_gym.agents.router_base import Router
from corl_gym.experts import Pool
from corl_gym.experts.managed import ManagedExpert
from corl_gym.experts.openai_backend import OpenAIExpert
from corl_gym.protocol import ANSWER_CLOSE, ANSWER_OPEN, CALL_CLOSE, CALL_OPEN, STOP_STRINGS

PROBLEM_MARKER = "\n\nProblem:\n"


class ChatController(Router):
    """See the module docstring. `client` is an `OpenAIExpert` (or anything with its `chat` and `spec`)."""

    def __init__(self, client: Any, name: str | None = None):
        self.client = client
        self.name = name or f"api:{client.spec.name}"

    def reset(self, env: Any, info: dict[str, Any]) -> None:
        super().reset(env, info)
        self.messages: list[dict[str, str]] = []
        self.seen = ""  # the context the model has already been shown, its own last turn included
        self.usage = {"prompt_tokens": 0, "completion_tokens": 0, "cost_usd": 0.0, "failed_requests": 0}

    def act(self, observation: str, info: dict[str, Any]) -> str:
        self._extend(observation)
        reply = self.client.chat(self.messages, stop=list(STOP_STRINGS))
        self.usage["prompt_tokens"] += reply.prompt_tokens
        self.usage["completion_tokens"] += reply.completion_tokens
        self.usage["cost_usd"] += reply.cost_usd
        self.view.charge_controller(reply.cost_usd)
        if reply.error is not None:
            self.usage["failed_requests"] += 1
            turn = ""
        else:
            turn = close_open_tag(reply.text)
        self.messages.append({"role": "assistant", "content": turn})
        self.seen = observation + turn
        return turn

    def _extend(self, observation: str) -> None:
        if not self.messages:
            system, _, problem = observation.partition(PROBLEM_MARKER)
            self.messages = [{"role": "system", "content": system}, {"role": "user", "content": problem.strip()}]
            return
        appended = observation[len(self.seen):] if observation.startswith(self.seen) else observation
        self.messages.append({"role": "user", "content": appended.strip()})


def close_open_tag(text: str) -> str:
    """Re-append the stop string an API removed: the tag of the action the turn left open."""
    last_call, last_answer = text.rfind(CALL_OPEN), text.rfind(ANSWER_OPEN)
    if last_answer > last_call and ANSWER_CLOSE not in text[last_answer:]:
        return text + ANSWER_CLOSE
    if last_call > last_answer and CALL_CLOSE not in text[last_call:]:
        return text + CALL_CLOSE
    return text


def make_chat_controller(pool: Pool, entry: str) -> ChatController:
    """The `api:<entry>` policy: a chat controller for an `openai`-backend entry of `pool`."""
    expert = pool.controller if entry == pool.controller.name else pool.experts.get(entry)
    if expert is None:
        names = ", ".join([pool.controller.name, *pool.experts])
        raise ValueError(f"api:{entry}: pool {pool.name!r} has no entry {entry!r}; entries: {names}")
    if expert.spec.backend != "openai":
        raise ValueError(
            f"api:{entry}: entry {entry!r} of pool {pool.name!r} uses backend {expert.spec.backend!r}; an API "
            "controller needs an `openai`-backend entry (an OpenAI-compatible endpoint), e.g. from the `paper` pool"
        )
    client = OpenAIExpert(expert.spec)
    if pool.ledger is not None:  # its own requests are booked, and capped, with the run's expert calls
        client = ManagedExpert(client, ledger=pool.ledger, account=f"{pool.name}/{entry}")
    return ChatController(client, name=f"api:{entry}")

"""The state of one `CORL-Math-v0` episode, and of one turn between its parsing and the expert's reply."""

from __future__ import annotations

from dataclasses import dataclass, field

from corl_gym.data import Problem
from corl_gym.protocol import AnswerAction, CallAction, InvalidAction


@dataclass
class Turn:
    """One step between parsing the action and receiving the expert's reply (the vector env runs the
    calls of all its envs concurrently between the two halves)."""

    text: str
    token_ids: list[int] | None
    action: CallAction | AnswerAction | InvalidAction


@dataclass
class Episode:
    """What the env keeps of the episode in play: its problem and budget, its context (text, and ids in
    token mode) and its accounts."""

    problem: Problem
    mode: str
    threshold_usd: float
    text: str
    token_ids: list[int] | None
    turn: int = 0
    cost_usd: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    calls: dict[str, int] = field(default_factory=dict)  # expert -> calls, every expert from 0, in roster order
    controller_cost_usd: float = 0.0
    pending_controller_cost: float = 0.0
    invalid_turns: int = 0
    done: bool = False

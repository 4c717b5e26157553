"""Backend `replay`: recorded results of real models, replayed per problem (RouterBench semantics).

A replay file is JSONL, one row per (problem, model), with `problem_id`, `model`, `correct`, `answer`,
`prompt_tokens`, `completion_tokens`, `cost_usd`, and optionally `est_prompt_tokens` and
`est_completion_tokens` (token counts estimated from the recorded text). Rows are
checked when the pool loads (an error names the file and line): `correct` is true or false (0 and 1 are
accepted too; a string such as "false" is refused, not read as true), token counts are non-negative
integers or null, `cost_usd` a finite non-negative number or null. A problems file's rows need
`problem_id` and `problem` (a string). Entry options:

- `file` (required): the replay JSONL. `$CORL_DATA_DIR/...` (or `${CORL_DATA_DIR}/...`) resolves against
  that environment variable; another relative path against the pool file's folder.
- `replay_model`: the model name in the file (default: the entry's `model`).
- `problems_file`: the set's problems (`problem_id`, `problem`); default `<file stem>_problems.jsonl`
  beside `file` when it exists. It lets a problem loaded under another id (e.g. GSM8K from the hub)
  be matched by its exact text (whitespace-normalised).
- `est_prompt_tokens`, `est_completion_tokens`: token counts for rows that record none. They win over a
  row's own estimates: set them for a model whose billed tokens its recorded text does not show (a
  reasoning model's hidden reasoning is billed as output but never recorded).

The tokens of a call, the first that is known: the row's recorded count; the entry's `est_*` option; the
row's `est_*` field; the default (prompt: the query's estimated tokens, about 4 characters a token plus
the chat overhead; completion: 350, a typical length for a 7-9B instruct model's MATH solution).

Decisions: the recorded `correct` decides, whatever the query says. A correct reply boxes the gold
answer. A wrong reply boxes the model's recorded answer; when its row records none (null or blank), the
reply states no final answer (no `\\boxed{}`), as the model's own reply did. A model whose rows record no
answer at all (the LLMRouter file keeps only scores) cannot say what it answered, so its wrong replies box
a plausible wrong value instead (`wrong_answers`), as does a wrong row whose recorded answer is
equivalent to the gold one (the label wins). The cost is the recorded `cost_usd` when present, else the
entry's prices times the call's tokens. A problem the file does not cover is a configuration error, not
an expert failure: `call` raises ValueError and `uncovered` lists such problems so `Pool.check_covers`
can refuse them up front.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import re
from pathlib import Path
from typing import Any

from corl_gym.answer_groups import equivalent
from corl_gym.data import Problem
from corl_gym.experts.base import Expert, ExpertReply, ExpertSpec, boxed_reply, estimate_prompt_tokens, is_finite
from corl_gym.experts.wrong_answers import strip_answer, wrong_answer
from corl_gym.verify import extract_answer

DEFAULT_COMPLETION_TOKENS = 350
_LOG = logging.getLogger(__name__)
_DATA_DIR_PREFIX = re.compile(r"^\$(\{CORL_DATA_DIR\}|CORL_DATA_DIR)(?=/|\\|$)")


def resolve_data_path(value: str, base_dir: Path | None) -> Path:
    """Resolve a pool file's path option (see the module docstring)."""
    match = _DATA_DIR_PREFIX.match(value)
    if match:
        data_dir = os.environ.get("CORL_DATA_DIR")
        if not data_dir:
            raise ValueError(
                f"{value} needs the environment variable CORL_DATA_DIR: set it to the folder holding the "
                f"data files, e.g. `export CORL_DATA_DIR=../shared/data`"
            )
        return Path(data_dir).expanduser() / value[match.end():].lstrip("/\\")
    path = Path(value).expanduser()
    return path if path.is_absolute() or base_dir is None else base_dir / path


@functools.lru_cache(maxsize=8)
def _read_rows(path: str, mtime: float) -> dict[str, dict[str, dict[str, Any]]]:
    """model -> problem_id -> row; cached because every expert of a pool reads the same file. Every row is
    checked here, so a bad value fails when the pool loads, naming the file and line."""
    table: dict[str, dict[str, dict[str, Any]]] = {}
    for number, row in _jsonl(path, "replay row"):
        try:
            _check_row(row)
        except ValueError as exc:
            raise ValueError(f"{path}:{number}: not a replay row: {exc}") from exc
        rows = table.setdefault(str(row["model"]), {})
        if str(row["problem_id"]) in rows:  # two recordings of one pair: keep the first, as resuming does
            _LOG.warning("%s:%d: a second row for model %r, problem %r; dropped", path, number, row["model"],
                         row["problem_id"])
            continue
        rows[str(row["problem_id"])] = row
    return table


@functools.lru_cache(maxsize=8)
def _read_texts(path: str, mtime: float) -> dict[str, str]:
    """normalised problem text -> problem_id."""
    texts = {}
    for number, row in _jsonl(path, "problems row"):
        if not isinstance(row, dict) or not _is_id(row.get("problem_id")) or not isinstance(row.get("problem"), str):
            raise ValueError(f"{path}:{number}: not a problems row: it needs `problem_id` (a string or integer) and "
                             f"`problem` (a string)")
        texts[_normalise(row["problem"])] = str(row["problem_id"])
    return texts


def _jsonl(path: str, what: str) -> list[tuple[int, Any]]:
    """(line number, parsed JSON) for each non-blank line; ValueError names the file and line."""
    rows = []
    try:
        with open(path, encoding="utf-8") as handle:
            for number, line in enumerate(handle, 1):
                if not line.strip():
                    continue
                try:
                    rows.append((number, json.loads(line)))
                except ValueError as exc:  # JSONDecodeError, or a number too long to convert
                    raise ValueError(f"{path}:{number}: not a {what} (not valid JSON: {exc})") from exc
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not UTF-8 text ({exc}); a replay file is UTF-8 JSONL") from exc
    return rows


def _is_id(value: Any) -> bool:
    return isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool))


def _check_row(row: Any) -> None:
    """ValueError saying what is wrong with a replay row (see the module docstring), else None."""
    if not isinstance(row, dict):
        raise ValueError(f"a JSON object is needed, got {type(row).__name__}")
    for key in ("model", "problem_id"):
        if not _is_id(row.get(key)):
            raise ValueError(f"`{key}` must be a string (or an integer), got {row.get(key)!r}")
    correct = row.get("correct")
    if not isinstance(correct, bool) and not (type(correct) is int and correct in (0, 1)):
        raise ValueError(f"`correct` must be true or false (or 0 or 1), got {correct!r}")
    for key in ("prompt_tokens", "completion_tokens", "est_prompt_tokens", "est_completion_tokens"):
        if row.get(key) is not None and _token_count(row[key]) is None:
            raise ValueError(f"`{key}` must be a non-negative integer or null, got {row[key]!r}")
    cost = row.get("cost_usd")
    if cost is not None and not _amount(cost):
        raise ValueError(f"`cost_usd` must be a finite non-negative number or null, got {cost!r}")


def _token_count(value: Any) -> int | None:
    """`value` as a token count (an integer, or a float with no fraction), or None when it is not one."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if isinstance(value, float) and (not is_finite(value) or not value.is_integer()):
        return None
    return int(value) if value >= 0 else None


def _amount(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float)) and is_finite(value) and value >= 0


def _normalise(text: str) -> str:
    return " ".join(text.split())


class ReplayExpert(Expert):
    """Replays one model's recorded results; see the module docstring."""

    def __init__(self, spec: ExpertSpec, *, base_dir: Path | None = None, **_: Any):
        super().__init__(spec)
        opts = spec.options
        if "file" not in opts:
            raise ValueError("a replay expert needs the option `file` (the replay JSONL)")
        path = resolve_data_path(str(opts["file"]), base_dir)
        if not path.is_file():
            raise FileNotFoundError(f"replay file {path} not found (option `file` = {opts['file']!r})")
        self.model_key = str(opts.get("replay_model", spec.model))
        table = _read_rows(str(path), path.stat().st_mtime)
        if self.model_key not in table:
            raise ValueError(f"{path} has no rows for model {self.model_key!r}; models: {', '.join(sorted(table))}")
        self.rows = table[self.model_key]
        self.records_answers = any(_recorded(row.get("answer")) is not None for row in self.rows.values())
        self.texts = self._problem_texts(path, opts.get("problems_file"), base_dir)
        self.est_prompt_tokens = _option_count(opts, "est_prompt_tokens")
        self.est_completion_tokens = _option_count(opts, "est_completion_tokens")
        self._replies: dict[str, str] = {}  # problem id -> reply text (a wrong answer may need a verifier check)

    @staticmethod
    def _problem_texts(path: Path, option: Any, base_dir: Path | None) -> dict[str, str]:
        problems = resolve_data_path(str(option), base_dir) if option else path.with_name(f"{path.stem}_problems.jsonl")
        if not problems.is_file():
            if option:
                raise FileNotFoundError(f"problems file {problems} not found (option `problems_file`)")
            return {}
        return _read_texts(str(problems), problems.stat().st_mtime)

    def _row(self, problem: Problem) -> dict[str, Any] | None:
        row = self.rows.get(problem.id)
        if row is None and self.texts:
            row = self.rows.get(self.texts.get(_normalise(problem.problem), ""))
        return row

    def uncovered(self, problems: list[Problem]) -> list[str]:
        return [problem.id for problem in problems if self._row(problem) is None]

    def call(self, query: str, problem: Problem) -> ExpertReply:
        row = self._row(problem)
        if row is None:
            raise ValueError(
                f"replay expert {self.name!r} (model {self.model_key!r}) has no recorded result for problem "
                f"{problem.id!r}; use the pool's own dataset"
            )
        prompt = _first_count(row.get("prompt_tokens"), self.est_prompt_tokens, row.get("est_prompt_tokens"))
        prompt = estimate_prompt_tokens(query) if prompt is None else prompt
        completion = _first_count(row.get("completion_tokens"), self.est_completion_tokens,
                                  row.get("est_completion_tokens"))
        completion = DEFAULT_COMPLETION_TOKENS if completion is None else completion
        cost = row.get("cost_usd")
        return ExpertReply(
            text=self._reply_text(row, problem, 2 + completion // 300),
            prompt_tokens=prompt,
            completion_tokens=completion,
            cost_usd=float(cost) if cost is not None else self.spec.cost(prompt, completion),
        )

    async def acall(self, query: str, problem: Problem) -> ExpertReply:
        return self.call(query, problem)  # a dictionary lookup: no thread needed

    def max_cost(self, query: str, problem: Problem) -> float:
        """Exact for a recorded problem: the replayed call's cost."""
        return (
            self.call(query, problem).cost_usd if self._row(problem) is not None else super().max_cost(query, problem)
        )

    def _reply_text(self, row: dict[str, Any], problem: Problem, steps: int) -> str:
        """The reply's text, made once per problem (deciding a wrong answer may take a verifier check)."""
        if problem.id not in self._replies:
            answer = self._answer(row, problem)
            self._replies[problem.id] = boxed_reply(answer, self.spec.model, steps) if answer is not None else (
                f"[{self.spec.model}] I worked through the problem in {steps} steps but stated no final answer.")
        return self._replies[problem.id]

    def _answer(self, row: dict[str, Any], problem: Problem) -> str | None:
        """The answer the reply states; None for a recorded reply that stated none (see the module docstring)."""
        if row.get("correct") in (True, 1):
            return strip_answer(problem.answer)
        recorded = _recorded(row.get("answer"))
        if recorded is None and self.records_answers:
            return None
        stated = None if recorded is None else extract_answer(boxed_reply(recorded, "", 0))
        if recorded is not None and (stated is None or not equivalent(stated, problem.answer)):
            return recorded  # what the model wrote, even where it is unreadable (an unbalanced brace)
        return wrong_answer(problem.answer, "replay", problem.id, self.model_key)


def _recorded(answer: Any) -> str | None:
    """A row's recorded answer, bare (no `$`, no `\\boxed{}`), or None when it records none."""
    text = strip_answer(str(answer)) if answer is not None else ""
    return text or None


def _first_count(*values: Any) -> int | None:
    """The first of `values` that is not None, as a token count (rows and options are checked at load)."""
    return next((_token_count(value) for value in values if value is not None), None)


def _option_count(opts: dict[str, Any], key: str) -> int | None:
    value = opts.get(key)
    if value is not None and _token_count(value) is None:
        raise ValueError(f"option `{key}` must be a non-negative integer, got {value!r}")
    return None if value is None else _token_count(value)

"""Math problems: the `Problem` record and `load_problems`.

Where a named set comes from, in order:
1. `synthetic` is generated in-process (`corl_gym.synthetic`); it needs no file, network or extra.
2. `$CORL_DATA_DIR/<name>.jsonl`. For `gsm8k` and `llmrouter-math`, when that file is absent, the rows of
   `$CORL_DATA_DIR/replay/llmrouter_math_gsm8k_problems.jsonl` whose `task` is `gsm8k` / `math` (the
   problems the `llmrouter-math` replay pool has recorded answers for; key `problem_id`). For
   `zeroeval-math-l5`, `$CORL_DATA_DIR/replay/zeroeval_math_l5_problems.jsonl` (the 721 MATH Level-5
   problems of the `zeroeval-math-l5` replay pool).
3. The Hugging Face hub through `datasets` (the optional `data` extra), for the names in `HUB_SOURCES`,
   only when downloads are allowed: `CORL_ALLOW_DOWNLOAD=1` (the command line's `--allow-download`).
   Offline by default, so a missing file is an immediate error, not a wait on network retries.
4. Otherwise `DatasetNotFoundError`: one line that says to set `CORL_DATA_DIR` (and how else to provide it).

Anything else that looks like a path (an existing file, or a name ending in `.jsonl` or holding a path
separator) is read as JSONL. Row schema: `problem` and `answer` are required; the key is `id`, else
`problem_id`, else `<file stem>-<row index>`; `level` is kept as an int 1-5 (MATH's 0 = "Level ?" and any
other value become None), `subject` as a string; every other field goes to `Problem.extra`. A bad line
raises `DataFormatError` naming the file and line: silently dropping rows would change benchmark counts.

Parsed files are cached per (path, mtime, size) so that constructing many envs is cheap. Each call returns
a new list; the `Problem` objects in it are shared between calls, so treat them (and `extra`) as read-only.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from corl_gym.problem import Problem  # the loaders' item; `corl_gym.data.Problem` is its documented name

DATA_DIR_ENV = "CORL_DATA_DIR"
ALLOW_DOWNLOAD_ENV = "CORL_ALLOW_DOWNLOAD"  # "1": a named set missing from CORL_DATA_DIR may come from the hub
DATASET_NAMES: tuple[str, ...] = (
    "synthetic", "math500", "aime2024", "aime2025", "amc2023", "amc2022_2023",
    "deepscaler", "math_train", "gsm8k", "llmrouter-math", "zeroeval-math-l5",
)
REPLAY_PROBLEMS = "replay/llmrouter_math_gsm8k_problems.jsonl"
REPLAY_TASKS = {"gsm8k": "gsm8k", "llmrouter-math": "math"}
REPLAY_SETS = {"zeroeval-math-l5": "replay/zeroeval_math_l5_problems.jsonl"}  # name -> a replay set's problems
# name -> (hub id, config, split). Best effort: used only when the file is missing and downloads are
# allowed. gsm8k from the hub is the official 1319-row test split, not the 550 replay rows.
HUB_SOURCES: dict[str, tuple[str, str | None, str]] = {
    "math500": ("HuggingFaceH4/MATH-500", None, "test"),
    "aime2024": ("HuggingFaceH4/aime_2024", None, "train"),
    "aime2025": ("math-ai/aime25", None, "test"),
    "amc2023": ("math-ai/amc23", None, "test"),
    "amc2022_2023": ("AI-MO/aimo-validation-amc", None, "train"),
    "deepscaler": ("agentica-org/DeepScaleR-Preview-Dataset", None, "train"),
    "gsm8k": ("openai/gsm8k", "main", "test"),
}
_CORE_KEYS = {"id", "problem_id", "problem", "answer", "level", "subject"}
_HUB_RENAMES = {"question": "problem", "Problem": "problem", "Answer": "answer", "ID": "id"}


class DatasetNotFoundError(FileNotFoundError):
    """A named data set or a JSONL path could not be found; the message says how to provide it."""


class UnknownDatasetError(ValueError):
    """A name that is neither a known data set nor a path; the message lists the valid names."""


class DataFormatError(ValueError):
    """A JSONL line that is not a valid problem row; the message names the file and line number."""


_CACHE: dict[tuple, tuple[Problem, ...]] = {}


def load_problems(name_or_path: str | os.PathLike, limit: int | None = None) -> list[Problem]:
    """Problems of a named set (`DATASET_NAMES`) or a JSONL file; the first `limit` when given."""
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
        raise ValueError(f"limit must be None or an int >= 0, got {limit!r}")
    spec = os.fspath(name_or_path)
    name = spec.strip().lower()
    if name == "synthetic":
        from corl_gym import synthetic  # lazy: the generator imports sympy

        return synthetic.generate(synthetic.DEFAULT_SIZE if limit is None else limit)
    if name in DATASET_NAMES:
        problems = _load_named(name)
    elif Path(spec).is_file() or spec.endswith(".jsonl") or os.sep in spec or "/" in spec:
        path = Path(spec).expanduser()
        if not path.is_file():
            raise DatasetNotFoundError(f"No such JSONL file: {spec!r}.")
        problems = _read_cached(path, dataset=path.stem)
    else:
        raise UnknownDatasetError(
            f"Unknown dataset {spec!r}. Valid names: {', '.join(DATASET_NAMES)}; "
            "or pass the path of a JSONL file with keys id, problem, answer.")
    return list(problems[:limit])


def _load_named(name: str) -> tuple[Problem, ...]:
    folder = os.environ.get(DATA_DIR_ENV)
    if folder:
        path = Path(folder).expanduser() / f"{name}.jsonl"
        if path.is_file():
            return _read_cached(path, dataset=name)
        replay = Path(folder).expanduser() / REPLAY_PROBLEMS
        if name in REPLAY_TASKS and replay.is_file():
            return _read_cached(replay, dataset=name, task=REPLAY_TASKS[name])
        if name in REPLAY_SETS and (Path(folder).expanduser() / REPLAY_SETS[name]).is_file():
            return _read_cached(Path(folder).expanduser() / REPLAY_SETS[name], dataset=name)
    hub = _load_from_hub(name)
    if hub is not None:
        return hub
    raise DatasetNotFoundError(_not_found_message(name, folder))


def _not_found_message(name: str, folder: str | None) -> str:
    where = f"CORL_DATA_DIR={folder!r} has no {name}.jsonl" if folder else "CORL_DATA_DIR is not set"
    if name in REPLAY_TASKS or name in REPLAY_SETS:
        where += f" (nor {REPLAY_SETS.get(name, REPLAY_PROBLEMS)})"
    ways = [f"set CORL_DATA_DIR to a folder that holds {name}.jsonl (one JSON object per line with keys "
            "id, problem, answer)", "or pass the path of a JSONL file instead of the name"]
    if name in HUB_SOURCES:
        ways.append(f"or allow a download of {HUB_SOURCES[name][0]} from the Hugging Face hub with "
                    f"--allow-download ({ALLOW_DOWNLOAD_ENV}=1; needs pip install 'corl-gym[data]')")
    return f"dataset {name!r} not found: {where}. To provide it, " + "; ".join(ways) + "."


def downloads_allowed() -> bool:
    return os.environ.get(ALLOW_DOWNLOAD_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def _read_cached(path: Path, dataset: str, task: str | None = None) -> tuple[Problem, ...]:
    stat = path.stat()
    key = (str(path.resolve()), stat.st_mtime_ns, stat.st_size, dataset, task)
    if key not in _CACHE:
        problems = _parse_jsonl(path, dataset)
        if task is not None:
            problems = [p for p in problems if p.extra.get("task") == task]
        _CACHE[key] = tuple(problems)
    return _CACHE[key]


def _parse_jsonl(path: Path, dataset: str) -> list[Problem]:
    problems: list[Problem] = []
    with path.open("rb") as lines:
        for lineno, raw in enumerate(lines, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise DataFormatError(f"{path}, line {lineno}: not UTF-8 ({exc.reason} at byte {exc.start})") from None
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataFormatError(f"{path}, line {lineno}: invalid JSON ({exc.msg})") from None
            except (ValueError, RecursionError) as exc:  # a 5000-digit integer, or 100k nested brackets
                raise DataFormatError(f"{path}, line {lineno}: unreadable JSON ({type(exc).__name__})") from None
            problems.append(row_to_problem(row, dataset, len(problems), where=f"{path}, line {lineno}"))
    _check_unique(problems, str(path))
    return problems


def row_to_problem(row: Any, dataset: str, index: int, where: str = "row") -> Problem:
    """One JSON object -> `Problem` (the schema in the module docstring); `DataFormatError` if invalid."""
    if not isinstance(row, dict):
        raise DataFormatError(f"{where}: expected a JSON object, got {type(row).__name__}")
    for key in ("problem", "answer"):
        if key not in row or row[key] is None:
            raise DataFormatError(f"{where}: missing required key {key!r}")
    problem, answer = row["problem"], _answer_text(row["answer"])
    if not isinstance(problem, str) or not problem.strip():
        raise DataFormatError(f"{where}: 'problem' must be a non-empty string")
    if answer is None:
        raise DataFormatError(f"{where}: 'answer' must be a non-empty string or a number")
    key = row.get("id", row.get("problem_id"))
    subject = row.get("subject")
    return Problem(
        id=str(key) if key is not None else f"{dataset}-{index}",
        problem=problem,
        answer=answer,
        level=_level(row.get("level")),
        subject=str(subject) if subject is not None else None,
        dataset=dataset,
        extra={k: v for k, v in row.items() if k not in _CORE_KEYS},
    )


def _answer_text(value: Any) -> str | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None  # JSON's NaN and Infinity are not answers
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # sources store integer answers as floats (27.0); the gold is "27"
    text = str(value).strip() if isinstance(value, (str, int, float)) else ""
    return text or None


def _level(value: Any) -> int | None:
    if isinstance(value, str):  # the hub's MATH copies write "Level 3"
        value = value.removeprefix("Level").strip()
        value = int(value) if value.isdigit() else None
    if isinstance(value, float) and not math.isfinite(value):
        return None  # JSON's NaN and Infinity are not levels
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return value if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 5 else None


def _check_unique(problems: Iterable[Problem], where: str) -> None:
    seen: set[str] = set()
    for index, problem in enumerate(problems):
        if problem.id in seen:
            raise DataFormatError(f"{where}: duplicate id {problem.id!r} (row {index})")
        seen.add(problem.id)


def _load_from_hub(name: str) -> tuple[Problem, ...] | None:
    """The set from the Hugging Face hub, or None when it has no hub source or downloads are not allowed."""
    if name not in HUB_SOURCES or not downloads_allowed():
        return None
    from corl_gym.extras import require

    require("datasets", f"downloading {name} ({ALLOW_DOWNLOAD_ENV}=1)")
    import datasets  # optional extra `data`

    key = ("hub", name)
    if key not in _CACHE:
        hub_id, config, split = HUB_SOURCES[name]
        try:
            rows = datasets.load_dataset(hub_id, config, split=split)
        except Exception as exc:  # network, auth, renamed repo: report with the ways to provide the file
            raise DatasetNotFoundError(
                _not_found_message(name, os.environ.get(DATA_DIR_ENV)) + f" (hub download failed: {exc})"
            ) from exc
        problems = [row_to_problem(_from_hub_row(name, i, dict(row)), name, i, where=f"{hub_id} row {i}")
                    for i, row in enumerate(rows)]
        _check_unique(problems, hub_id)
        _CACHE[key] = tuple(problems)
    return _CACHE[key]


def _from_hub_row(name: str, index: int, row: dict[str, Any]) -> dict[str, Any]:
    row = {_HUB_RENAMES.get(k, k): v for k, v in row.items()}
    if name == "gsm8k" and isinstance(row.get("answer"), str):  # "...worked solution #### 72"
        solution, _, final = row["answer"].rpartition("####")
        row["answer"], row["solution"] = final.strip().replace(",", ""), solution.strip()
    # Ids follow the local files (`<name>-<index>`), so results join whichever source was used.
    if "id" in row:
        row["source_id"] = row.pop("id")
    row["id"] = f"{name}-{index}"
    return row

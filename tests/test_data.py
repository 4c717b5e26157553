"""Tests for `corl_gym.data` (load_problems) and `corl_gym.synthetic` (the built-in problem set)."""

from __future__ import annotations

import collections
import hashlib
import json
import os
import re
import subprocess
import sys
import time
import types
from pathlib import Path

import pytest

from corl_gym import data, synthetic
from corl_gym.data import (
    DATASET_NAMES,
    DataFormatError,
    DatasetNotFoundError,
    Problem,
    UnknownDatasetError,
    load_problems,
)
from corl_gym.synthetic import families, latex

# ---- shared data files -----------------------------------------------------------------------------------

EXPECTED_ROWS = {
    "math500": 500, "aime2024": 30, "aime2025": 30, "amc2023": 40, "amc2022_2023": 83,
    "deepscaler": 975, "math_train": 7472, "gsm8k": 550, "llmrouter-math": 504, "zeroeval-math-l5": 721,
}


def test_dataset_names_are_the_named_sets() -> None:
    assert isinstance(DATASET_NAMES, tuple)
    assert set(DATASET_NAMES) == {"synthetic", *EXPECTED_ROWS}


@pytest.mark.parametrize("name", sorted(EXPECTED_ROWS))
def test_named_sets_row_counts(data_dir: Path, monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    monkeypatch.setenv("CORL_DATA_DIR", str(data_dir))
    problems = load_problems(name)
    assert len(problems) == EXPECTED_ROWS[name]
    assert all(isinstance(p, Problem) and p.problem and p.answer for p in problems)
    assert len({p.id for p in problems}) == len(problems)
    assert {p.dataset for p in problems} == {name}


def test_math500_fields(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CORL_DATA_DIR", str(data_dir))
    problems = load_problems("math500")
    assert problems[0].id == "math500-0"
    assert collections.Counter(p.level for p in problems) == {1: 43, 2: 90, 3: 105, 4: 128, 5: 134}
    assert collections.Counter(p.subject for p in problems)["Algebra"] == 124
    assert {"solution", "unique_id", "source"} <= set(problems[0].extra)
    assert not {"id", "problem", "answer", "level", "subject"} & set(problems[0].extra)


def test_level_zero_becomes_none_and_aime_keeps_leading_zeros(data_dir: Path, monkeypatch) -> None:
    monkeypatch.setenv("CORL_DATA_DIR", str(data_dir))
    assert sum(p.level is None for p in load_problems("math_train")) == 2  # MATH "Level ?"
    assert "025" in {p.answer for p in load_problems("aime2024")}  # answers as the source gives them
    assert all(p.answer == str(int(p.answer)) for p in load_problems("amc2023"))  # 27.0 -> "27"


def test_replay_sets_split_by_task(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CORL_DATA_DIR", str(data_dir))
    gsm8k, math = load_problems("gsm8k"), load_problems("llmrouter-math")
    assert all(p.id.startswith("llmrouter-gsm8k-") and p.extra["task"] == "gsm8k" for p in gsm8k)
    assert all(p.id.startswith("llmrouter-math-") and p.extra["task"] == "math" for p in math)
    assert collections.Counter(p.extra["split"] for p in gsm8k) == {"train": 500, "test": 50}


def test_limit_takes_first_n_and_lists_are_fresh(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CORL_DATA_DIR", str(data_dir))
    full = load_problems("aime2025")
    assert load_problems("aime2025", limit=7) == full[:7]
    assert load_problems("aime2025", limit=0) == []
    assert load_problems("aime2025", limit=10_000) == full
    first = load_problems("aime2025")
    first.clear()
    assert len(load_problems("aime2025")) == 30
    with pytest.raises(ValueError, match="limit"):
        load_problems("aime2025", limit=-1)


# ---- JSONL paths ------------------------------------------------------------------------------------------

def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    return path


def test_jsonl_path_schema(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "mine.jsonl", [
        {"id": "a", "problem": "1+1?", "answer": "2", "level": 3, "subject": "Algebra", "year": 2024},
        {"problem_id": "b", "problem": "2+2?", "answer": 4.0, "level": 0, "task": "x"},
        "",
        {"problem": "3+3?", "answer": 6, "level": "Level 5"},
        {"problem": "4+4?", "answer": "8", "level": 9},
    ])
    problems = load_problems(str(path))
    assert [p.id for p in problems] == ["a", "b", "mine-2", "mine-3"]
    assert [p.answer for p in problems] == ["2", "4", "6", "8"]
    assert [p.level for p in problems] == [3, None, 5, None]
    assert problems[0].subject == "Algebra" and problems[0].extra == {"year": 2024}
    assert problems[1].extra == {"task": "x"} and problems[1].dataset == "mine"
    assert load_problems(path, limit=1) == problems[:1]  # os.PathLike works too


def test_non_utf8_file_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "latin1.jsonl"
    path.write_bytes(b'{"id": "a", "problem": "p", "answer": "1"}\n{"id": "b", "problem": "caf\xe9", "answer": "2"}\n')
    with pytest.raises(DataFormatError, match="line 2: not UTF-8"):
        load_problems(str(path))


@pytest.mark.parametrize("line, message", [
    ('{"id": "x", "problem": "p", "answer": ', "invalid JSON"),
    ('{"id": "x", "problem": "p"}', "missing required key 'answer'"),
    ('{"id": "x", "answer": "1"}', "missing required key 'problem'"),
    ('["not", "an", "object"]', "expected a JSON object"),
    ('{"id": "x", "problem": "  ", "answer": "1"}', "'problem' must be a non-empty string"),
    ('{"id": "x", "problem": "p", "answer": ""}', "'answer' must be"),
    ('{"id": "ok", "problem": "p", "answer": "1"}', "duplicate id 'ok'"),
    ('{"id": "x", "problem": "p", "answer": NaN}', "'answer' must be"),
    ('{"id": "x", "problem": "p", "answer": -Infinity}', "'answer' must be"),
    ('{"id": "x", "problem": "p", "answer": ' + "9" * 5000 + "}", "unreadable JSON"),
    ("[" * 100_000, "unreadable JSON"),
])
def test_bad_lines_name_file_and_line(tmp_path: Path, line: str, message: str) -> None:
    path = write_jsonl(tmp_path / "bad.jsonl", ['{"id": "ok", "problem": "p", "answer": "1"}', "", line])
    with pytest.raises(DataFormatError) as info:
        load_problems(str(path))
    assert isinstance(info.value, ValueError)
    assert message in str(info.value) and str(path) in str(info.value)
    if "duplicate" not in message:
        assert "line 3" in str(info.value)


def test_missing_path_and_unknown_name(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="No such JSONL file"):
        load_problems(str(tmp_path / "nope.jsonl"))
    with pytest.raises(ValueError) as info:
        load_problems("math5000")
    assert isinstance(info.value, UnknownDatasetError)
    assert all(name in str(info.value) for name in DATASET_NAMES)


def test_parsed_files_are_cached_per_mtime(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_jsonl(tmp_path / "c.jsonl", [{"id": "a", "problem": "p", "answer": "1"}])
    calls = []
    parse = data._parse_jsonl
    monkeypatch.setattr(data, "_parse_jsonl", lambda *a: calls.append(a) or parse(*a))
    first, second = load_problems(str(path)), load_problems(str(path))
    assert len(calls) == 1 and first == second and first is not second
    write_jsonl(path, [{"id": "a", "problem": "p", "answer": "2"}, {"id": "b", "problem": "q", "answer": "3"}])
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 10**9))
    assert [p.answer for p in load_problems(str(path))] == ["2", "3"] and len(calls) == 2


# ---- names without files: the data folder, the hub, the error ----------------------------------------------

@pytest.fixture
def no_hub(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "datasets", None)  # `import datasets` raises ImportError
    monkeypatch.setattr(data, "_CACHE", {})


def test_not_found_error_says_how_to_provide(tmp_path: Path, monkeypatch, no_hub) -> None:
    monkeypatch.setenv("CORL_DATA_DIR", str(tmp_path))
    with pytest.raises(FileNotFoundError) as info:
        load_problems("math500")
    text = str(info.value)
    assert isinstance(info.value, DatasetNotFoundError)
    for part in ("math500.jsonl", "CORL_DATA_DIR", "path of a JSONL file", "pip install 'corl-gym[data]'",
                 "HuggingFaceH4/MATH-500", "--allow-download", "CORL_ALLOW_DOWNLOAD=1"):
        assert part in text
    assert "\n" not in text  # one line
    monkeypatch.delenv("CORL_DATA_DIR")
    with pytest.raises(DatasetNotFoundError, match="CORL_DATA_DIR is not set"):
        load_problems("aime2024")
    with pytest.raises(DatasetNotFoundError) as info:  # no hub copy: no pip hint, the replay file named
        load_problems("llmrouter-math")
    assert "replay/llmrouter_math_gsm8k_problems.jsonl" in str(info.value) and "pip" not in str(info.value)


def test_name_jsonl_in_data_dir_wins_over_replay(tmp_path: Path, monkeypatch, no_hub) -> None:
    monkeypatch.setenv("CORL_DATA_DIR", str(tmp_path))
    write_jsonl(tmp_path / "gsm8k.jsonl", [{"id": "g-0", "problem": "p", "answer": "1"}])
    assert [p.id for p in load_problems("gsm8k")] == ["g-0"]
    assert [p.id for p in load_problems("GSM8K")] == ["g-0"]  # names are case-insensitive


def fake_datasets(rows: list[dict] | Exception, seen: list) -> types.ModuleType:
    def load_dataset(hub_id, config=None, split=None):
        seen.append((hub_id, config, split))
        if isinstance(rows, Exception):
            raise rows
        return rows
    return types.SimpleNamespace(load_dataset=load_dataset)


def test_offline_by_default_never_touches_the_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CORL_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("CORL_ALLOW_DOWNLOAD", raising=False)
    monkeypatch.setattr(data, "_CACHE", {})
    seen: list = []
    monkeypatch.setitem(sys.modules, "datasets", fake_datasets([{"problem": "P", "answer": "3"}], seen))
    with pytest.raises(DatasetNotFoundError, match="set CORL_DATA_DIR to a folder that holds math500.jsonl"):
        load_problems("math500")
    assert seen == []  # `datasets` installed, yet no download was tried


def test_allowed_download_without_datasets_names_the_extra(tmp_path: Path, monkeypatch, no_hub) -> None:
    monkeypatch.setenv("CORL_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("CORL_ALLOW_DOWNLOAD", "1")
    with pytest.raises(ImportError, match=r"downloading math500 \(CORL_ALLOW_DOWNLOAD=1\) needs datasets: "
                                          r"pip install 'corl-gym\[data\]'"):
        load_problems("math500")


def test_hub_fallback_through_datasets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CORL_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("CORL_ALLOW_DOWNLOAD", "1")
    monkeypatch.setattr(data, "_CACHE", {})
    seen: list = []
    rows = [{"question": "Q?", "answer": "Natalia sold 48/2 = 24 clips.\n#### 1,024"}]
    monkeypatch.setitem(sys.modules, "datasets", fake_datasets(rows, seen))
    (problem,) = load_problems("gsm8k")
    assert seen == [("openai/gsm8k", "main", "test")]
    assert (problem.id, problem.problem, problem.answer) == ("gsm8k-0", "Q?", "1024")
    assert "24 clips" in problem.extra["solution"]
    rows = [{"problem": "P", "answer": "3", "level": 2, "subject": "Algebra", "unique_id": "test/a/1.json"}]
    monkeypatch.setitem(sys.modules, "datasets", fake_datasets(rows, seen))
    (problem,) = load_problems("math500")
    assert (problem.id, problem.level, problem.extra["unique_id"]) == ("math500-0", 2, "test/a/1.json")
    monkeypatch.setitem(sys.modules, "datasets", fake_datasets(ConnectionError("offline"), seen))
    with pytest.raises(DatasetNotFoundError, match="hub download failed: offline"):
        load_problems("aime2025")


# ---- synthetic ----------------------------------------------------------------------------------------------

def test_synthetic_default_set() -> None:
    problems = load_problems("synthetic")
    assert len(problems) == synthetic.DEFAULT_SIZE == 5000
    assert [p.id for p in problems[:3]] == ["synthetic-0", "synthetic-1", "synthetic-2"]
    assert collections.Counter(p.level for p in problems) == {level: 1000 for level in range(1, 6)}
    subjects = collections.Counter(p.subject for p in problems)
    assert set(subjects) == set(synthetic.FAMILIES) and len(subjects) >= 15
    assert min(subjects.values()) >= 250  # families balanced too
    assert {p.dataset for p in problems} == {"synthetic"}
    assert len({p.problem for p in problems}) >= 4500


def test_synthetic_prefix_and_determinism() -> None:
    assert load_problems("synthetic", limit=40) == load_problems("synthetic")[:40]
    assert synthetic.generate(5, seed=7) != synthetic.generate(5)
    assert synthetic.generate(5, seed=7)[0].id == "synthetic-s7-0"


def synthetic_digest(n: int) -> str:
    rows = [(p.id, p.problem, p.answer, p.level, p.subject) for p in load_problems("synthetic", limit=n)]
    return hashlib.sha256(json.dumps(rows).encode()).hexdigest()


def test_synthetic_same_in_a_fresh_process() -> None:
    code = "from tests.test_data import synthetic_digest; print(synthetic_digest(300))"
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=root)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == synthetic_digest(300)


def test_synthetic_pinned_examples() -> None:
    """The published set must not drift between versions or machines: change these only on purpose."""
    p = load_problems("synthetic", limit=25)
    assert (p[0].problem, p[0].answer, p[0].subject) == ("Compute $10 + 9 - 9$.", "10", "arithmetic")
    assert (p[5].subject, p[5].level, p[5].answer) == ("fractions", 1, "-\\frac{13}{14}")
    assert p[23].problem == ("Find all solutions to $x^2 + 11x - 1 = 0$. Enter the solutions separated by commas.")
    assert p[23].answer == "\\frac{-11 - 5\\sqrt{5}}{2}, \\frac{-11 + 5\\sqrt{5}}{2}"


def test_synthetic_is_cached_and_lazy() -> None:
    synthetic.make_problem.cache_clear()
    first = synthetic.generate(5000)
    built = synthetic.make_problem.cache_info().misses
    again = load_problems("synthetic")
    assert synthetic.make_problem.cache_info().misses == built  # the second load built nothing
    assert list(again) == list(first[: len(again)])
    code = "import sys, corl_gym.data; print('sympy' in sys.modules, 'corl_gym.synthetic' in sys.modules)"
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root)
    assert out.stdout.split() == ["False", "False"], out.stderr


def test_answer_style() -> None:
    import sympy as sp

    assert latex.tex(sp.Rational(-3, 4)) == "-\\frac{3}{4}"
    assert latex.tex(2 * sp.sqrt(3)) == "2\\sqrt{3}"
    assert latex.tex(sp.Rational(32, 3) * sp.pi) == "\\frac{32\\pi}{3}"
    assert latex.decimal_or_fraction(sp.Rational(15, 2)) == "7.5"
    assert latex.decimal_or_fraction(sp.Rational(1, 3)) == "\\frac{1}{3}"
    assert latex.poly_tex([2, -1, 0, -7]) == "2x^3 - x^2 - 7"
    assert families.surd_roots(1, 0, -8) == ["-2\\sqrt{2}", "2\\sqrt{2}"]
    for p in load_problems("synthetic")[:500]:
        assert not re.search(r"\d \\|\.0\b|\*\*|sqrt\(", p.answer), p.answer


def test_difficulty_grows_with_level() -> None:
    """More numbers to handle at higher levels (a proxy; the families also change method by level)."""
    problems = load_problems("synthetic")
    for family in ("arithmetic", "fractions", "percentages", "statistics"):
        counts = [sum(len(re.findall(r"\d+", p.problem)) for p in problems if p.subject == family and p.level == lv)
                  for lv in range(1, 6)]
        assert counts == sorted(counts) and counts[0] < counts[-1], family


def test_answers_pass_the_project_checker() -> None:
    from corl_gym.verify import Verdict, check  # no skip: this must run wherever the package is installed

    problems = load_problems("synthetic")[::17]  # ~300, every family and level
    for p in problems:
        assert check(p.answer, p.answer) == Verdict.CORRECT, (p.id, p.answer)
        assert check(f"\\boxed{{{p.answer}}}", p.answer) == Verdict.CORRECT, (p.id, p.answer)
    for p in problems:
        if re.fullmatch(r"-?\d+", p.answer):
            assert check(str(int(p.answer) + 1), p.answer) == Verdict.WRONG, (p.id, p.answer)


def test_answers_solve_the_stated_equations() -> None:
    """An independent derivation: parse the equation in the text and solve it with sympy."""
    import sympy as sp
    latex2sympy = pytest.importorskip("latex2sympy2_extended").latex2sympy  # ships with math-verify
    x, y = sp.symbols("x y")
    problems = load_problems("synthetic")
    for family in ("linear_equations", "quadratic_equations", "linear_systems"):
        for p in [q for q in problems if q.subject == family][:25]:
            sides = [m.split("=") for m in re.findall(r"\$([^$]*=[^$]*)\$", p.problem)]
            eqs = [sp.Eq(latex2sympy(a), latex2sympy(b)) for a, b in sides]
            if family == "linear_systems":
                sol = sp.solve(eqs, [x, y], dict=True)[0]
                want = f"({latex.tex(sol[x])}, {latex.tex(sol[y])})" if "ordered" in p.problem \
                    else latex.tex(sol[x] * sol[y])
                assert p.answer == want, p
                continue
            roots = sorted(sp.solve(eqs[0], x), key=float)
            given = [latex2sympy(part) for part in p.answer.split(", ")]
            assert len(given) == len(roots) and all(sp.simplify(a - b) == 0 for a, b in zip(given, roots)), p

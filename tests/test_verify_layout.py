"""The shape of the corl_gym.verify package: its modules import only the standard library, sympy,
math-verify and core `corl_gym` (their order inside the package is the `verify` contract of setup.cfg,
checked by `tests/test_layers.py`), and the worker runs with `-m` from any folder."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import corl_gym.verify

PACKAGE = Path(corl_gym.verify.__file__).parent
THIRD_PARTY = {"sympy", "math_verify"}
NOT_CORE = ("corl_gym.envs", "corl_gym.agents", "corl_gym.benchmarks", "corl_gym.cli")


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, absolute dotted name) of every import in `path`, relative ones resolved inside the package."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = "corl_gym.verify" + (f".{base}" if base else "")
            if base == "corl_gym.verify":  # `from . import norm`: the names are modules
                found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
            else:
                found.append((node.lineno, base))
    return found


def test_imports_stay_in_the_core_and_its_light_dependencies() -> None:
    offenders = []
    for path in sorted(PACKAGE.glob("*.py")):
        for line, name in _imports(path):
            where = f"{path.name}:{line} {name}"
            if name.startswith("corl_gym.verify"):
                continue  # their order inside the package: the `verify` contract in setup.cfg
            elif name.startswith("corl_gym"):
                if name.startswith(NOT_CORE):
                    offenders.append(where)
            elif name.split(".")[0] not in sys.stdlib_module_names | THIRD_PARTY | {"__future__"}:
                offenders.append(where)
    assert offenders == []


def test_worker_runs_as_a_module_from_any_folder(tmp_path: Path) -> None:
    """`python -m corl_gym.verify.worker` is the worker, wherever the caller's working folder is."""
    from corl_gym.verify import worker

    assert worker.WORKER_MODULE == "corl_gym.verify.worker"
    job = json.dumps({"id": 3, "pred": "\\sqrt{8}", "gold": "2\\sqrt{2}"}) + "\n"
    out = subprocess.run([sys.executable, "-m", worker.WORKER_MODULE], input=job, capture_output=True,
                         text=True, timeout=120, cwd=tmp_path, check=True)
    assert out.stdout.splitlines() == ["ready", json.dumps({"id": 3, "verdict": "CORRECT"})]

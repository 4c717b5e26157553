"""The package's layers, enforced: import-linter's contracts (setup.cfg, `[importlinter]`) hold.

The source tree maps `envs/`, `agents/` and `benchmarks/` under `corl_gym` (setup.py), so an import-graph
tool pointed at the checkout sees only `corl_gym/`. The test lays the tree out as a wheel installs it, in
a scratch folder, and runs `lint-imports` there: every module of every layer is in the graph."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def installed_layout(dest: Path) -> Path:
    """Copy the package as the wheel lays it out (`corl_gym/` plus the mapped folders) under `dest`."""
    mapped = _mapped_folders()
    skip = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(ROOT / "corl_gym", dest / "corl_gym", ignore=skip)
    for package, folder in mapped.items():
        shutil.copytree(ROOT / folder, dest / package.replace(".", "/"), ignore=skip)
    return dest


def _mapped_folders() -> dict[str, str]:
    """setup.py's `MAPPED` (package -> folder), read without running setup()."""
    for node in ast.parse((ROOT / "setup.py").read_text()).body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == "MAPPED":
            return ast.literal_eval(node.value)
    raise AssertionError("setup.py has no MAPPED")


def test_import_linter_contracts_hold(tmp_path):
    layout = installed_layout(tmp_path / "site")
    env = {**os.environ, "PYTHONPATH": str(layout)}
    lint = Path(sys.executable).with_name("lint-imports")  # the dev extra's, beside this interpreter
    shutil.copy(ROOT / "setup.cfg", layout)  # lint-imports reads its contracts from the working folder
    result = subprocess.run([str(lint), "--no-cache"], cwd=layout, env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Contracts: 3 kept, 0 broken." in result.stdout


MAX_MODULE_LINES, MAX_FUNCTION_LINES = 400, 60
PRODUCT_FOLDERS = ("corl_gym", "envs", "agents", "benchmarks")


def test_no_product_module_over_400_lines_and_no_function_over_60():
    too_long = []
    for folder in PRODUCT_FOLDERS:
        for path in sorted((ROOT / folder).rglob("*.py")):
            text, where = path.read_text(), path.relative_to(ROOT)
            if len(text.splitlines()) > MAX_MODULE_LINES:
                too_long.append(f"{where}: {len(text.splitlines())} lines")
            for node in ast.walk(ast.parse(text)):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    length = node.end_lineno - node.lineno + 1
                    if length > MAX_FUNCTION_LINES:
                        too_long.append(f"{where}:{node.lineno} {node.name}: {length} lines")
    assert too_long == []

"""The wheel holds every module of the source tree and the data the commands read, and works installed
(non-editable) outside the checkout. CI also installs it with its extras into a fresh venv (`.ci/run`)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# source folder -> its package in the wheel (setup.py's mapping)
FOLDERS = {
    "corl_gym": "corl_gym",
    "envs": "corl_gym/envs",
    "agents": "corl_gym/agents",
    "benchmarks": "corl_gym/benchmarks",
}
PACKAGE_DATA = ("corl_gym/experts/pools/*.yaml", "benchmarks/data/*.jsonl")
SKIP_PARTS = {"__pycache__", "results"}


def source_files() -> list[Path]:
    """The checkout's files as git sees them (tracked, or new and not ignored)."""
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True, text=True)
    if listed.returncode != 0:
        pytest.skip("not a git checkout")
    return [Path(line) for line in listed.stdout.splitlines() if (ROOT / line).is_file()]


def expected_in_wheel(files: list[Path]) -> set[str]:
    wanted = set()
    for path in files:
        top = path.parts[0]
        if top not in FOLDERS or SKIP_PARTS & set(path.parts):
            continue
        if path.suffix == ".py" or any(path.match(pattern) for pattern in PACKAGE_DATA):
            wanted.add("/".join([FOLDERS[top], *path.parts[1:]]))
    return wanted


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """A wheel built from a copy of the checkout's files (so stray build folders cannot leak in)."""
    source, out = tmp_path_factory.mktemp("source"), tmp_path_factory.mktemp("dist")
    for path in source_files():
        (source / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / path, source / path)
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                            "-w", str(out), str(source)], capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr[-3000:]
    (path,) = out.glob("corl_gym-*.whl")
    return path


def test_every_module_folder_is_a_package() -> None:
    folders = {path.parent for path in source_files() if path.suffix == ".py" and path.parts[0] in FOLDERS}
    missing = sorted(str(f) for f in folders if not (ROOT / f / "__init__.py").is_file())
    assert not missing, f"folders with modules but no __init__.py (not in the wheel): {missing}"


def test_wheel_holds_the_source_tree_and_package_data(wheel: Path) -> None:
    names = {n for n in zipfile.ZipFile(wheel).namelist() if ".dist-info/" not in n}
    expected = expected_in_wheel(source_files())
    assert {"corl_gym/agents/ppo/train.py", "corl_gym/experts/pools/sim-paper.yaml",
            "corl_gym/benchmarks/data/verify_suite.jsonl"} <= expected
    assert sorted(expected - names) == [], "missing from the wheel"
    assert sorted(names - expected) == [], "in the wheel but not in the source tree"


def test_installed_wheel_runs_outside_the_checkout(wheel: Path, tmp_path: Path) -> None:
    target, work = tmp_path / "site", tmp_path / "work"
    work.mkdir()
    installed = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)],
        capture_output=True, text=True, timeout=300,
    )
    assert installed.returncode == 0, installed.stderr[-3000:]
    env = {**os.environ, "PYTHONPATH": str(target)}  # ahead of the checkout's editable install

    def run(*code: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, *code], cwd=work, env=env, capture_output=True, text=True, timeout=300)

    where = run("-c", "import corl_gym; print(corl_gym.__file__)")
    assert where.stdout.startswith(str(target)), where.stdout + where.stderr
    for argv in (["list"], ["--version"], ["eval", "--help"], ["record", "--help"],
                 *(["train", "--learner", learner, "--help"] for learner in ("ppo", "sft", "trl-grpo", "sb3-ppo"))):
        done = run("-m", "corl_gym.cli", *argv)
        assert done.returncode == 0 and "Traceback" not in done.stderr, (argv, done.stderr[-2000:])
    suite = run("-c", "from corl_gym.benchmarks.verify_bench import SUITE; print(SUITE.is_file())")
    assert suite.stdout.strip() == "True", suite.stderr

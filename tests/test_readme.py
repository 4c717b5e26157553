"""Every command and code snippet of README.md runs, as extracted from the file itself (so what is added
to the README later is tested too).

- Commands: each line of a ```bash block, and each inline code span that starts with `corl-gym `,
  `python ` or `pip `, in README order, in one scratch folder that has `../shared/data` (a link to the
  data folder), so `CORL_DATA_DIR=../shared/data` works as written; `CORL_DATA_DIR` is also exported,
  as for a user who set it once. The OpenAI endpoint is a loopback server
  (`corl_gym.experts.fake_server`) with a dummy key, so the `paper` pool's commands run as written
  without network, key or cost.
- Python snippets: each ```python block, run as a script in the same folder; the environment snippet
  must end with a CORRECT episode.

Size overrides, appended to a command (argparse keeps the last value of a flag) and listed in
`OVERRIDES`: smaller `--limit`, `--train-limit`, `--timesteps` and benchmark sizes, and `--quiet`; the
command as written is what runs otherwise. `pip install` runs as a dry run against what is installed
(`--dry-run --no-index --no-deps --no-build-isolation`), in the checkout; the test suite command runs
one test of the suite (`-k test_version_and_list`) instead of the suite this test is part of. Lines that
install the checkout itself (`-e .`) are skipped when corl-gym is installed from a wheel (CI's wheel smoke
runs this file against the installed wheel, from outside the checkout).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import corl_gym
from corl_gym.experts.fake_server import ChatServer

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
OVERRIDES: list[tuple[str, list[str]]] = [
    (r"^corl-gym bench\b", ["--limit", "20", "--train-limit", "40", "--quiet"]),
    (r"^corl-gym record\b", ["--limit", "20", "--quiet"]),
    (r"^corl-gym train --learner sb3-", ["--timesteps", "1024", "--train-limit", "100", "--quiet"]),
    (r"^corl-gym train --learner (sft|ppo|trl-grpo)\b(?!.*--help)", ["--quiet"]),
    (r"^corl-gym eval\b", ["--limit", "5", "--quiet"]),
    (r"^python -m corl_gym\.benchmarks\.env_speed\b", ["--steps", "500", "--bench-limit", "20"]),
    (r"^python -m corl_gym\.benchmarks\.verify_bench\b", ["--limit", "20", "--deadline", "0.25"]),
    (r"^python -m corl_gym\.benchmarks\.expert_fanout\b", ["--n", "64", "--latency", "0.05"]),
    (r"^python -m pytest\b", ["-k", "test_version_and_list", "-p", "no:cacheprovider"]),
]
PIP_DRY_RUN = "pip install --dry-run --no-index --no-deps --no-build-isolation -q "
INSTALLED_FROM_CHECKOUT = Path(corl_gym.__file__).resolve().parent.parent == ROOT


def readme_commands(text: str) -> list[str]:
    """Commands in README order: bash-block lines and inline `corl-gym ...`, `python ...`, `pip ...` spans."""
    found: list[tuple[int, str]] = []
    for block in re.finditer(r"^```bash\n(.*?)^```", text, re.S | re.M):
        offset = block.start(1)
        for line in block.group(1).splitlines(keepends=True):
            if line.strip() and not line.lstrip().startswith("#"):
                found.append((offset, line.strip()))
            offset += len(line)
    fenced = [(m.start(), m.end()) for m in re.finditer(r"^```.*?^```", text, re.S | re.M)]
    for span in re.finditer(r"`((?:corl-gym|python|pip) [^`\n]+)`", text):
        if not any(start <= span.start() < end for start, end in fenced):
            found.append((span.start(), span.group(1)))
    return list(dict.fromkeys(re.sub(r"\s+#.*$", "", command) for _, command in sorted(found)))


def python_snippets(text: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", text, re.S | re.M)


def as_run(command: str) -> str:
    """The command with the test's overrides applied to each `&&` part."""
    parts = []
    for part in command.split(" && "):
        part = part.strip()
        prefix = re.match(r"^((?:[A-Z_]+=\S+\s+)*)(.*)$", part)
        env, program = prefix.group(1), prefix.group(2)
        if program.startswith("pip install "):
            program = PIP_DRY_RUN + program[len("pip install "):]
        for pattern, extra in OVERRIDES:
            if re.search(pattern, program):
                program += " " + " ".join(extra)
        parts.append(env + program)
    return " && ".join(parts)


def installs_checkout(command: str) -> bool:
    return re.search(r"-e\s+[\"']?\.", command) is not None


COMMANDS = readme_commands(README)


@pytest.fixture(scope="module")
def scratch(tmp_path_factory, data_dir) -> Path:
    base = tmp_path_factory.mktemp("readme")
    (base / "shared").mkdir()
    (base / "shared" / "data").symlink_to(Path(data_dir).resolve())
    (base / "work").mkdir()
    return base / "work"


@pytest.fixture(scope="module")
def environment(scratch, data_dir):
    with ChatServer(max_requests=1_000_000, lifetime_s=3600) as server:
        yield {
            **os.environ,
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
            "CORL_DATA_DIR": str(Path(data_dir).resolve()),
            "OPENAI_BASE_URL": server.base_url,
            "OPENAI_API_KEY": "sk-readme-test",
        }


def test_the_readme_has_commands_and_snippets():
    assert len(COMMANDS) >= 15 and len(python_snippets(README)) >= 2
    assert any(c.startswith("corl-gym record") for c in COMMANDS) and any("_pool.yaml" in c for c in COMMANDS)


@pytest.mark.parametrize("command", COMMANDS, ids=[c[:70] for c in COMMANDS])
def test_command_runs(command, scratch, environment):
    if installs_checkout(command) and not INSTALLED_FROM_CHECKOUT:
        pytest.skip("installs the checkout itself; this run tests an installed wheel")
    where = ROOT if "pip install" in command else scratch
    done = subprocess.run(["bash", "-c", as_run(command)], cwd=where, env=environment, capture_output=True, text=True,
                          timeout=900)
    assert done.returncode == 0, f"{as_run(command)}\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("index", range(len(python_snippets(README))))
def test_python_snippet_runs(index, scratch, environment):
    snippet = python_snippets(README)[index]
    done = subprocess.run([sys.executable, "-c", snippet], cwd=scratch, env=environment, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    if 'gym.make("CORL-Math-v0", budget="low")' in snippet:
        assert done.stdout.strip().splitlines()[-1].endswith("CORRECT"), done.stdout


def test_overrides_only_append():
    assert as_run(readme_commands("```bash\ncorl-gym bench --limit 500 --out runs/x   # note\n```\n")[0]) == \
        "corl-gym bench --limit 500 --out runs/x --limit 20 --train-limit 40 --quiet"
    assert as_run("pip install -e . && CORL_DATA_DIR=../d python -m pytest -q") == \
        f"{PIP_DRY_RUN}-e . && CORL_DATA_DIR=../d python -m pytest -q -k test_version_and_list -p no:cacheprovider"
    assert installs_checkout('pip install torch==2.13.0 -e ".[dev,train]" && python -m pytest -q')
    assert (
        installs_checkout("pip install -e . && corl-gym bench")
        and not installs_checkout("pip install 'corl-gym[vllm]'")
    )

"""The README's examples run as written (small sizes)."""

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.mark.parametrize(
    "script, args, expected",
    [
        ("gym_loop.py", ["--episodes", "5"], "5 episodes at budget low: mean reward"),
        ("vector_env.py", ["--num-envs", "4", "--steps", "12"], "episodes finished, mean reward"),
        ("sb3_router.py", ["--timesteps", "512", "--episodes", "5"], "budget high: mean reward"),
        ("trl_grpo.py", ["--steps", "2"], "2 GRPO steps; mean env reward per generation"),
    ],
)
def test_example_runs(script, args, expected):
    if script == "sb3_router.py":
        pytest.importorskip("sb3_contrib", reason="needs the sb3 extra")
    if script == "trl_grpo.py":
        pytest.importorskip("trl", reason="needs the trl extra")
    done = subprocess.run([sys.executable, str(EXAMPLES / script), *args], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert expected in done.stdout

"""Shared fixtures. Tests that need ../shared/data use `data_dir`: they skip with a reason when the
folder is absent (a user's fresh clone) and fail instead when CORL_REQUIRE_DATA=1 (CI sets it)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


def _data_dir() -> Path | None:
    value = os.environ.get("CORL_DATA_DIR")
    if not value:
        return None
    path = Path(value)
    return path if (path / "math500.jsonl").is_file() else None


@pytest.fixture(scope="session")
def data_dir() -> Path:
    path = _data_dir()
    if path is None:
        message = "CORL_DATA_DIR is unset or has no math500.jsonl (set CORL_DATA_DIR=../shared/data)"
        if os.environ.get("CORL_REQUIRE_DATA") == "1":
            pytest.fail(message + " but CORL_REQUIRE_DATA=1", pytrace=False)
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def tokenizer(tmp_path_factory):
    """The tests' tiny controller tokenizer (`tests/tiny.py`), trained once per session. Shared: a test
    must not change it (save a copy to change)."""
    pytest.importorskip("transformers", reason="the tiny tokenizer needs the `train` extra (transformers)")
    from tests.tiny import make_tokenizer

    return make_tokenizer(tmp_path_factory.mktemp("tok"))


@pytest.fixture(scope="session")
def micro_model_dir(tokenizer, tmp_path_factory) -> Path:
    """A saved `micro` tiny Qwen2 (seed 0) with the shared tokenizer: a controller checkpoint folder to
    train or evaluate from. Shared: write runs elsewhere, never into it."""
    from corl_gym.agents.tiny import tiny_qwen2

    folder = tmp_path_factory.mktemp("models") / "micro"  # the folder's name is the policy's name in eval rows
    tokenizer.save_pretrained(folder)
    tiny_qwen2(len(tokenizer), "micro", seed=0).save_pretrained(folder)
    return folder

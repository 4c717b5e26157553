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

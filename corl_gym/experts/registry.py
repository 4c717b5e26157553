"""Pool-file entries -> `ExpertSpec` -> a backend `Expert`.

Backends are named by module path and imported only when a pool uses them, so loading `sim-paper`
never imports openai, torch, transformers or vllm.
"""

from __future__ import annotations

import importlib
import math
from pathlib import Path
from typing import Any

from corl_gym.experts.base import Expert, ExpertSpec

BACKENDS: dict[str, str] = {
    "sim": "corl_gym.experts.sim:SimExpert",
    "replay": "corl_gym.experts.replay:ReplayExpert",
    "openai": "corl_gym.experts.openai_backend:OpenAIExpert",
    "hf": "corl_gym.experts.hf:HFExpert",
    "vllm": "corl_gym.experts.vllm_backend:VLLMExpert",
}
REQUIRED_KEYS = ("name", "backend", "model", "price_in", "price_out")
SPEC_KEYS = REQUIRED_KEYS + ("description",)


def parse_entry(raw: Any, where: str) -> ExpertSpec:
    """Validate one expert entry of a pool file; `where` (file and entry) prefixes every error."""
    if not isinstance(raw, dict):
        raise ValueError(f"{where}: an expert entry must be a mapping, got {type(raw).__name__}")
    missing = [key for key in REQUIRED_KEYS if key not in raw]
    if missing:
        raise ValueError(f"{where}: missing key(s) {', '.join(missing)}")
    name, backend = str(raw["name"]), str(raw["backend"])
    if backend not in BACKENDS:
        raise ValueError(f"{where}: unknown backend {backend!r}; valid backends: {', '.join(BACKENDS)}")
    prices = {key: _price(raw[key], key, where) for key in ("price_in", "price_out")}
    options = {key: value for key, value in raw.items() if key not in SPEC_KEYS}
    return ExpertSpec(
        name=name,
        backend=backend,
        model=str(raw["model"]),
        description=str(raw.get("description") or raw["model"]),
        options=options,
        **prices,
    )


def _price(value: Any, key: str, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{where}: {key} must be a non-negative number of USD per 1M tokens, got {value!r}")
    return float(value)


def make_expert(spec: ExpertSpec, *, seed: int = 0, base_dir: Path | None = None) -> Expert:
    """Instantiate `spec`'s backend. `seed` reaches simulated experts; `base_dir` (the pool file's
    folder) resolves relative file paths."""
    module_name, class_name = BACKENDS[spec.backend].split(":")
    backend_class = getattr(importlib.import_module(module_name), class_name)
    return backend_class(spec, seed=seed, base_dir=base_dir)

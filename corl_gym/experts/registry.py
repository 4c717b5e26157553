"""Pool-file entries -> `ExpertSpec` -> a backend `Expert`.

Backends are named by module path and imported only when a pool uses them, so loading `sim-paper`
never imports openai, torch, transformers or vllm.

Every key of an entry must be one its backend reads (`BACKEND_OPTIONS`, plus the keys every entry has):
a misspelt option (`max_token`, `tempurature`) would otherwise be ignored in silence and its default
used, so it is an error that suggests the nearest valid key. A backend that reads a new option must list
it here.
"""

from __future__ import annotations

import difflib
import importlib
import math
from pathlib import Path
from typing import Any

from corl_gym.experts.base import Expert, ExpertSpec, is_finite

BACKENDS: dict[str, str] = {
    "sim": "corl_gym.experts.sim:SimExpert",
    "replay": "corl_gym.experts.replay:ReplayExpert",
    "openai": "corl_gym.experts.openai_backend:OpenAIExpert",
    "hf": "corl_gym.experts.hf:HFExpert",
    "vllm": "corl_gym.experts.vllm_backend:VLLMExpert",
}
REQUIRED_KEYS = ("name", "backend", "model", "price_in", "price_out")
SPEC_KEYS = REQUIRED_KEYS + ("description",)
# Options any entry may have: the pool's expert cache, and the completion length that `expected_cost`
# (budget-aware routers, the env's hard cap) assumes.
COMMON_OPTIONS = ("cache", "expected_completion_tokens", "concurrency")
BACKEND_OPTIONS: dict[str, tuple[str, ...]] = {
    "sim": ("accuracy", "skill", "slope", "correlation", "completion_tokens", "completion_sigma", "completion_slope",
            "prompt_overhead", "tokens_per_s", "latency_base_s", "simulate_latency"),
    "replay": ("file", "replay_model", "problems_file", "est_prompt_tokens", "est_completion_tokens"),
    "openai": ("base_url", "api_key_env", "max_tokens", "max_tokens_param", "temperature", "seed", "system_prompt",
               "extra_params", "timeout", "max_retries", "backoff_base_s", "backoff_max_s", "max_retry_after_s", "rpm",
               "tpm"),
    "hf": ("device", "dtype", "trust_remote_code", "max_tokens", "temperature", "top_p", "system_prompt"),
    "vllm": ("engine_args", "use_chat", "max_tokens", "temperature", "top_p", "system_prompt"),
}
# Options that must be strings when given (null allowed: the backend's default).
_STRING_OPTIONS = ("base_url", "api_key_env", "system_prompt", "file", "replay_model", "problems_file",
                   "max_tokens_param", "device", "dtype")
# Numeric options: (minimum, integer?); _POSITIVE ones must be above 0, _NULLABLE ones may be null.
# Token counts, prices and rates are never negative (a negative completion count would pay the run).
_NUMBER_OPTIONS = {"rpm": (0, False), "tpm": (0, False), "timeout": (0, False), "max_tokens": (1, True),
                   "expected_completion_tokens": (1, True), "concurrency": (1, True), "max_retries": (0, True),
                   "backoff_base_s": (0, False), "backoff_max_s": (0, False), "max_retry_after_s": (0, False),
                   "completion_tokens": (0, False), "completion_sigma": (0, False), "prompt_overhead": (0, True),
                   "tokens_per_s": (0, False), "latency_base_s": (0, False), "est_prompt_tokens": (0, True),
                   "est_completion_tokens": (0, True), "temperature": (0, False), "top_p": (0, False),
                   "skill": (-math.inf, False), "slope": (-math.inf, False), "completion_slope": (-math.inf, False),
                   "correlation": (0, False)}
_POSITIVE = frozenset({"rpm", "tpm", "timeout", "completion_tokens", "tokens_per_s", "top_p"})
_NULLABLE = frozenset({"rpm", "tpm", "temperature", "est_prompt_tokens"})


def parse_entry(raw: Any, where: str) -> ExpertSpec:
    """Validate one expert entry of a pool file; `where` (file and entry) prefixes every error."""
    if not isinstance(raw, dict):
        raise ValueError(f"{where}: an expert entry must be a mapping, got {type(raw).__name__}")
    missing = [key for key in REQUIRED_KEYS if key not in raw]
    if missing:
        raise ValueError(f"{where}: missing key(s) {', '.join(missing)}")
    name, backend, model = (_text(raw[key], key, where) for key in ("name", "backend", "model"))
    if backend not in BACKENDS:
        raise ValueError(f"{where}: unknown backend {backend!r}; valid backends: {', '.join(BACKENDS)}")
    description = raw.get("description")
    if description is not None and not isinstance(description, str):
        raise ValueError(f"{where}: `description` must be a string, got a {type(description).__name__}")
    prices = {key: _price(raw[key], key, where) for key in ("price_in", "price_out")}
    options = {key: value for key, value in raw.items() if key not in SPEC_KEYS}
    _check_known(options, backend, where)
    _check_options(options, where)
    return ExpertSpec(name=name, backend=backend, model=model, description=description or model, options=options,
                      **prices)


def _text(value: Any, key: str, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        shown = repr(value) if isinstance(value, (str, int, float, type(None))) else f"a {type(value).__name__}"
        raise ValueError(f"{where}: `{key}` must be a non-empty string, got {shown}")
    return value


def _check_known(options: dict[str, Any], backend: str, where: str) -> None:
    valid = (*SPEC_KEYS, *COMMON_OPTIONS, *BACKEND_OPTIONS[backend])
    for key in options:
        if key not in valid:
            close = difflib.get_close_matches(str(key), valid, n=1)
            hint = f"; did you mean `{close[0]}`?" if close else f"; valid keys: {', '.join(sorted(valid))}"
            raise ValueError(f"{where}: unknown key `{key}` for backend {backend!r}{hint}")


def _check_options(options: dict[str, Any], where: str) -> None:
    """Type and range checks of the options several backends share; a bad value fails at load, not as a
    hang or a crash mid-run (a negative `rpm` used to make the rate limiter wait forever)."""
    for key in _STRING_OPTIONS:
        value = options.get(key)
        if value is not None and not isinstance(value, str):
            raise ValueError(f"{where}: `{key}` must be a string, got a {type(value).__name__}")
    for key, (minimum, integer) in _NUMBER_OPTIONS.items():
        if key not in options or (options[key] is None and key in _NULLABLE):
            continue
        value = options[key]
        number = not isinstance(value, bool) and isinstance(value, int if integer else (int, float))
        if not number or not is_finite(value) or value < minimum or (key in _POSITIVE and value <= 0):
            kind = "an integer" if integer else "a finite number"
            bound = "> 0" if key in _POSITIVE else "" if minimum == -math.inf else f">= {minimum}"
            raise ValueError(f"{where}: `{key}` must be {kind}{' ' + bound if bound else ''}, got {value!r}"
                             + ("; leave it out for no limit" if key in ("rpm", "tpm") else ""))


def _price(value: Any, key: str, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not is_finite(value) or value < 0:
        raise ValueError(f"{where}: {key} must be a non-negative number of USD per 1M tokens, got {value!r}")
    return float(value)


def make_expert(spec: ExpertSpec, *, seed: int = 0, base_dir: Path | None = None) -> Expert:
    """Instantiate `spec`'s backend. `seed` reaches simulated experts; `base_dir` (the pool file's
    folder) resolves relative file paths."""
    module_name, class_name = BACKENDS[spec.backend].split(":")
    backend_class = getattr(importlib.import_module(module_name), class_name)
    return backend_class(spec, seed=seed, base_dir=base_dir)

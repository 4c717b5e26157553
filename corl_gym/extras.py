"""Optional dependencies: which `corl-gym[...]` extra installs each, and the error that says so.

`import corl_gym` needs none of them; a feature that does either calls `require(module, purpose)` or
just imports it, and the command line turns the `ImportError` into one line with the `pip install` to
run (`install_hint`).
"""

from __future__ import annotations

import importlib

# The optional dependency behind each import a feature may need, and the extras that bring it.
EXTRAS: dict[str, str] = {
    "torch": "train", "transformers": "train", "accelerate": "train", "tokenizers": "train",
    "trl": "train,trl", "stable_baselines3": "sb3", "sb3_contrib": "sb3", "datasets": "data",
    "matplotlib": "plot", "vllm": "vllm",
}


class MissingExtraError(ImportError):
    """An optional dependency is not installed; the message has the `pip install` line that adds it."""

    def __init__(self, module: str, purpose: str = ""):
        self.extra = EXTRAS.get(module, "train")
        what = f"{purpose} needs {module}" if purpose else f"{module} is not installed"
        super().__init__(f"{what}: pip install 'corl-gym[{self.extra}]'", name=module)


def require(module: str, purpose: str = "") -> None:
    """Import `module` or raise `MissingExtraError` naming the extra that installs it."""
    try:
        importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtraError(module.split(".")[0], purpose) from exc


def install_hint(exc: BaseException) -> str | None:
    """The `pip install` line for an import that failed on an optional dependency, else None."""
    for error in _chain(exc):
        if isinstance(error, MissingExtraError):
            return str(error)
        top = (getattr(error, "name", None) or "").split(".")[0]
        if isinstance(error, ImportError) and top in EXTRAS:
            return f"{top} is not installed: pip install 'corl-gym[{EXTRAS[top]}]'"
    return None


def _chain(exc: BaseException | None) -> list[BaseException]:
    chain: list[BaseException] = []
    while exc is not None and all(exc is not seen for seen in chain):
        chain.append(exc)
        exc = exc.__cause__ or exc.__context__
    return chain

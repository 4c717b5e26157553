"""The argument vocabulary every `corl-gym` verb shares, and how a verb reports a mistake.

One spelling and one grammar per idea, in `bench`, `train` (every learner), `eval` and `record`:

| flag | grammar |
|---|---|
| `--pool` | a pool name (`corl-gym list`) or a YAML path; `bench` takes a comma list |
| `--dataset` | a dataset name or a JSONL path; `bench` and `eval` take a comma list |
| `--budgets` / `--budget` | a budget (below); a comma list where the verb runs several |
| `--seeds` / `--seed` | integers >= 0; a comma list where the verb runs several |
| `--limit` | problems per dataset, an integer >= 0 (0: all) |
| `--out` | where results go |
| `--quiet` | no progress bars |
| `--allow-download` | let a missing data set come from the Hugging Face hub (offline otherwise) |

A budget is `low`, `medium`, `high` (any mode of the pool), `mixed` (drawn per episode) or a dollar amount
(`0.005`, `$0.005`).

Every numeric flag is checked when it is parsed (finite, in range), so `--limit -3` or `--seeds abc` is
one line, not a run. `Parser` prints argparse's errors as that one line (`PROG: error: ...`, exit 2)
instead of the usage block, and `run_verb` turns the errors a user can fix (a bad value, a missing file,
a missing optional dependency) into the same kind of line; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from corl_gym.data import ALLOW_DOWNLOAD_ENV
from corl_gym.extras import install_hint

EXIT_USAGE = 2


class UsageError(ValueError):
    """A mistake in how a verb was called; `run_verb` prints it as one line and exits 2."""


# ------------------------------------------------------------------------------ value grammars
def comma_list(text: str) -> list[str]:
    items = [item.strip() for item in text.split(",")]
    if not any(items):
        raise argparse.ArgumentTypeError(f"expected a comma list, got {text!r}")
    return [item for item in items if item]


def _number(text: str, kind: type, what: str, accept: Callable[[Any], bool]) -> Any:
    """`text` as a finite `kind` that `accept`s, else an error naming `what` was expected."""
    try:
        value = kind(text.strip())
    except ValueError:
        value = None
    if value is None or (isinstance(value, float) and not math.isfinite(value)) or not accept(value):
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
    return value


def nonnegative_int(text: str) -> int:
    return _number(text, int, "an integer >= 0", lambda value: value >= 0)


def positive_int(text: str) -> int:
    return _number(text, int, "an integer >= 1", lambda value: value >= 1)


def nonnegative_float(text: str) -> float:
    return _number(text, float, "a finite number >= 0", lambda value: value >= 0)


def fraction(text: str) -> float:
    return _number(text, float, "a number in (0, 1]", lambda value: 0.0 < value <= 1.0)


def dollars(text: str) -> float:
    """A dollar amount: `0.5` or `$0.5`, finite and >= 0."""
    return nonnegative_float(text.strip().removeprefix("$"))


def budget(text: str) -> str | float:
    """A budget: a mode name (the pool checks it), `mixed`, or a dollar amount."""
    text = text.strip()
    if not text:
        raise argparse.ArgumentTypeError("expected a budget mode (low, medium, high, mixed) or a dollar amount")
    if text[0] in "$+-.0123456789":
        try:
            return dollars(text)
        except argparse.ArgumentTypeError:
            raise argparse.ArgumentTypeError(
                f"expected a budget mode (low, medium, high, mixed) or a dollar amount >= 0, got {text!r}") from None
    if not text.replace("-", "").replace("_", "").isalnum():
        raise argparse.ArgumentTypeError(
            f"expected a budget mode (low, medium, high, mixed) or a dollar amount, got {text!r}")
    return text


def budget_list(text: str) -> list[str | float]:
    return [budget(item) for item in comma_list(text)]


def seed_list(text: str) -> list[int]:
    return [nonnegative_int(item) for item in comma_list(text)]


def budget_label(value: str | float) -> str:
    """How a budget is written in rows and tables: a mode as is, a dollar amount as `$0.005`."""
    return value if isinstance(value, str) else f"${value:g}"


# ------------------------------------------------------------------------------ the parser
class Parser(argparse.ArgumentParser):
    """argparse with one-line errors: `PROG: error: MESSAGE (see PROG --help)`, exit 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def add_pool(parser: argparse.ArgumentParser, *, many: bool = False, default: Any = "sim-paper",
             required: bool = False) -> None:
    what = "expert pool names or YAML paths, comma-separated" if many else "an expert pool name or a YAML path"
    parser.add_argument("--pool", type=comma_list if many else str, default=default, required=required,
                        help=f"{what} (`corl-gym list` shows the names)"
                        + ("" if required else f" (default: {_shown(default)})"))


def add_dataset(parser: argparse.ArgumentParser, *, many: bool = False, required: bool = False,
                default_help: str = "the pool's, else synthetic") -> None:
    what = "dataset names or JSONL paths, comma-separated" if many else "a dataset name or a JSONL path"
    parser.add_argument("--dataset", type=comma_list if many else str, default=None, required=required,
                        help=what + ("" if required else f" (default: {default_help})"))
    add_allow_download(parser)


def add_allow_download(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--allow-download", action="store_true",
                        help=f"fetch a named data set missing from CORL_DATA_DIR from the Hugging Face hub "
                             f"(needs the data extra; same as {ALLOW_DOWNLOAD_ENV}=1); offline otherwise")


def add_budgets(parser: argparse.ArgumentParser, *, many: bool = True, default: Any = None) -> None:
    grammar = "low, medium, high (the pool's modes), mixed (drawn per episode) or a dollar amount such as 0.005"
    if many:
        parser.add_argument("--budgets", "--budget", dest="budgets", type=budget_list,
                            default=default or ["low", "medium", "high"],
                            help=f"comma list of budgets: {grammar} (default: low,medium,high)")
    else:
        parser.add_argument("--budget", "--budgets", dest="budget", type=budget, default=default or "mixed",
                            help=f"the budget: {grammar} (default: {default or 'mixed'})")


def add_seeds(parser: argparse.ArgumentParser, *, many: bool = True, default: Any = 0) -> None:
    if many:
        parser.add_argument("--seeds", "--seed", dest="seeds", type=seed_list, default=[default],
                            help=f"comma list of seeds, integers >= 0 (default: {default})")
    else:
        parser.add_argument("--seed", "--seeds", dest="seed", type=nonnegative_int, default=default,
                            help=f"seed, an integer >= 0 (default: {default})")


def add_limit(parser: argparse.ArgumentParser, default: int | None, what: str = "test problems per dataset") -> None:
    parser.add_argument("--limit", type=nonnegative_int, default=default,
                        help=f"{what}, an integer >= 0; 0: all (default: {default or 'all'})")


def add_out(parser: argparse.ArgumentParser, default: str | None, what: str) -> None:
    parser.add_argument("--out", default=default, help=f"{what} (default: {default})")


def add_quiet(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress bars")


def apply_allow_download(args: argparse.Namespace) -> None:
    """`--allow-download` for this process (and the processes it starts)."""
    if getattr(args, "allow_download", False):
        os.environ[ALLOW_DOWNLOAD_ENV] = "1"


def _shown(default: Any) -> str:
    return ",".join(default) if isinstance(default, list) else str(default)


# ------------------------------------------------------------------------------ running a verb
def report(prog: str, message: object) -> int:
    """Print `PROG: error: MESSAGE` on one line; returns the exit code 2."""
    print(f"{prog}: error: {' '.join(str(message).split())}", file=sys.stderr)
    return EXIT_USAGE


def run_verb(prog: str, verb: Callable[..., int | None], *args: Any) -> int:
    """`verb(*args)`; a user's mistake (bad value, missing file, missing extra) is one line and exit 2."""
    try:
        return int(verb(*args) or 0)
    except ImportError as exc:
        hint = install_hint(exc)
        if hint is None and (getattr(exc, "name", None) or "").startswith("corl_gym"):
            hint = f"this installation of corl-gym is incomplete ({exc}): reinstall it"
        if hint is None:
            raise
        return report(prog, hint)
    except (ValueError, OSError) as exc:
        return report(prog, str(exc) or type(exc).__name__)


def parse(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    apply_allow_download(args)
    return args

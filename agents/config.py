"""What every learner is configured by, and how: one dataclass style (a help line per field), the fields
they share, the command line built from a config class, the settings file an LLM run leaves beside its
model, and the learners' common `main`.

`RunConfig` holds what every learner has (`ppo`, `sft`, `trl-grpo` and the SB3 routers): the pool, the
training problems, the seed, the output. An LLM learner's config extends `LearnerConfig` (or `RLConfig`,
for the learners that sample the controller in the env) with its own fields (`_f(default, help)`);
`build_parser` turns every field into `--field-name` with the help line, so `corl-gym train --learner
NAME --help` lists them all and the flags cannot drift from the fields.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from corl_gym import cli_args

TRAIN_CONFIG = "corl_train.json"  # a run's settings, beside its model: `corl-gym eval` and later learners read them


def _f(default: Any, help: str, choices: Sequence[str] | None = None, *, parse: Callable[[str], Any] | None = None,
       aliases: Sequence[str] = ()) -> Any:
    """A config field: its default, its help line, and (for a string) the values it may take; `parse` reads
    its flag's text where the field's type does not say enough (a number >= 1, a list), `aliases` are
    further spellings of its flag that users already type."""
    return field(default=default, metadata={"help": help, "choices": choices, "parse": parse, "aliases": aliases})


@dataclass
class RunConfig:
    """The fields every learner has, with one meaning each: which experts, which problems, which seed,
    where the result goes."""

    # `--help` lists these fields first, in this order, then the others in field order (a subclass's fields
    # come after its base's, so the order of the flags users read is set here, not by the class tree)
    HELP_ORDER: ClassVar[tuple[str, ...]] = ()

    out: str = _f("runs/learner", "output folder")
    pool: str = _f("sim-paper", "expert pool name or YAML path")
    dataset: str = _f("synthetic", "training problems: a dataset name or JSONL path (its train split is used)")
    test_fraction: float = _f(0.5, "share of the dataset held out for evaluation (stable hash of ids), as in eval "
                                   "and bench")
    seed: int = _f(0, "seed of the model, the envs, sampling and data order")
    progress: bool = _f(True, "progress bar")


@dataclass
class LearnerConfig(RunConfig):
    """The fields every LLM learner has, with one meaning each."""

    HELP_ORDER: ClassVar[tuple[str, ...]] = ("model", "out", "pool", "dataset", "test_fraction", "integer_answers",
                                             "max_turns", "prompt_style", "seed", "time_limit_s", "progress")

    model: str = _f("", "folder of a transformers causal LM with its tokenizer (e.g. an SFT checkpoint)")
    integer_answers: bool = _f(False, "keep only problems whose gold answer is an integer of <= 3 digits")
    max_turns: int = _f(3, "turns per episode before truncation")
    prompt_style: str = _f("", "`full` or `compact` prompt and response blocks (see CORL-Math-v0); empty: the "
                                "style the model was trained on (its corl_train.json), else full")
    time_limit_s: float = _f(0.0, "stop after this many seconds of training (what was trained is saved); 0: no limit")

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(dataclasses.asdict(self), indent=2))


@dataclass
class RLConfig(LearnerConfig):
    """The fields of the learners that sample the controller in the env (PPO, GRPO); the training recipe
    (`agents.recipe`) runs either through them."""

    preset: str = _f("", "`tiny-cpu`: the training recipe (agents.recipe): an SFT start (built unless --model) and "
                         "its copy check, this learner, then eval; other flags override its values")
    device: str = _f("auto", "`cpu`, `cuda` or `auto`")
    max_new_tokens: int = _f(96, "tokens per controller turn (checked at the start: a call to every expert must fit)")
    temperature: float = _f(1.0, "sampling temperature of rollouts (> 0); the learner's log-probs use it too")
    top_p: float = _f(1.0, "nucleus sampling of rollouts")


def train_settings(model_dir: Path) -> dict[str, Any]:
    """The settings a model was trained with (`TRAIN_CONFIG` in its folder or up to three above); {} if none."""
    for folder in (model_dir, *model_dir.parents[:3]):
        if (folder / TRAIN_CONFIG).is_file():
            return json.loads((folder / TRAIN_CONFIG).read_text())
    return {}


# ------------------------------------------------------------------------------------ command line
def _parse_bool(text: str) -> bool:
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _budgets_text(text: str) -> str:
    cli_args.budget_list(text)  # checked here, kept as the comma list the config holds
    return text


# Fields that share the command line's vocabulary (`corl_gym.cli_args`); other numbers are >= 0.
_VOCABULARY: dict[str, Any] = {"budget": cli_args.budget, "budgets": _budgets_text, "seed": cli_args.nonnegative_int,
                               "test_fraction": cli_args.fraction}
_BY_TYPE: dict[type, Any] = {bool: _parse_bool, int: cli_args.nonnegative_int, float: cli_args.nonnegative_float}


def build_parser(cls: type, prog: str | None = None, description: str | None = None) -> argparse.ArgumentParser:
    """`--field-name VALUE` for every field of the dataclass `cls` (in `cls.HELP_ORDER`), its help line as
    the help; numbers are checked as they are parsed (finite, >= 0, or as the field's `parse` says), so a
    mistake is one line before anything runs. A field whose default is None is decided at run time: its
    help line says how. `--quiet` turns a `progress` field off; a `dataset` field brings `--allow-download`."""
    parser = cli_args.Parser(prog=prog, description=description)
    names = {f.name for f in dataclasses.fields(cls)}
    for f in _in_help_order(cls):
        parse = f.metadata.get("parse") or _VOCABULARY.get(f.name) or _BY_TYPE.get(type(f.default), type(f.default))
        default = "" if f.default is None else f" (default: {f.default!r})"
        parser.add_argument("--" + f.name.replace("_", "-"), *f.metadata.get("aliases", ()), dest=f.name, type=parse,
                            default=None, choices=f.metadata.get("choices"),
                            help=f"{f.metadata.get('help', '')}{default}")
    if "progress" in names:
        parser.add_argument("--quiet", "-q", dest="progress", action="store_const", const=False,
                            help="no progress bars")
    if "dataset" in names:
        cli_args.add_allow_download(parser)
    return parser


def _in_help_order(cls: type) -> list[dataclasses.Field]:
    first = getattr(cls, "HELP_ORDER", ())
    return sorted(dataclasses.fields(cls), key=lambda f: first.index(f.name) if f.name in first else len(first))


def parse_config(cls: type, argv: Sequence[str], prog: str | None = None, **preset: Any) -> Any:
    """A `cls` from the command line; `preset` values replace defaults, explicit flags replace both."""
    args = cli_args.parse(build_parser(cls, prog, cls.__doc__), argv)
    values = {**preset, **{k: v for k, v in vars(args).items() if v is not None and k != "allow_download"}}
    return cls(**values)


def _evaluate_line(cfg: Any, path: Path) -> str:
    return f"evaluate it with: corl-gym eval --checkpoint {cfg.out}"


def learner_main(cls: type, argv: Sequence[str] | None, prog: str | None, train: Callable[[Any], Path], *,
                 recipe: Callable[[str, list[str], str | None], int] | None = None, needs_model: bool = True,
                 next_step: Callable[[Any, Path], str] = _evaluate_line) -> int:
    """A learner's command line: the config from `argv`, then `recipe(preset, argv, prog)` when the config
    names a preset, else `train(config)`, where the model was saved and `next_step(config, path)`: what to
    run on it next."""
    argv = list(sys.argv[1:] if argv is None else argv)
    cfg = parse_config(cls, argv, prog)
    if recipe is not None and cfg.preset:
        return recipe(cfg.preset, argv, prog)
    if needs_model and not cfg.model:
        raise cli_args.UsageError("--model is required (or --preset tiny-cpu)")
    path = train(cfg)
    if int(os.environ.get("RANK", "0")) == 0:  # under torchrun: one line, not one per process
        print(f"saved {path}; {next_step(cfg, path)}")
    return 0

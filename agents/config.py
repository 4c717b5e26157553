"""What every LLM learner (`ppo`, `sft`, `trl-grpo`) is configured by, and how: one dataclass style (a
help line per field), the fields they share, the command line built from a config class, the settings
file a run leaves beside its model, and the learners' common `main`.

A learner's config extends `LearnerConfig` (or `RLConfig`, for the learners that sample the controller in
the env) with its own fields (`_f(default, help)`); `build_parser` turns every field into `--field-name`
with the help line, so `corl-gym train --learner NAME --help` lists them all and the flags cannot drift
from the fields.
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
from typing import Any

from corl_gym import cli_args

TRAIN_CONFIG = "corl_train.json"  # a run's settings, beside its model: `corl-gym eval` and later learners read them


def _f(default: Any, help: str, choices: Sequence[str] | None = None) -> Any:
    """A config field: its default, its help line, and (for a string) the values it may take."""
    return field(default=default, metadata={"help": help, "choices": choices})


@dataclass
class LearnerConfig:
    """The fields every LLM learner has, with one meaning each."""

    model: str = _f("", "folder of a transformers causal LM with its tokenizer (e.g. an SFT checkpoint)")
    out: str = _f("runs/learner", "output folder")
    pool: str = _f("sim-paper", "expert pool name or YAML path")
    dataset: str = _f("synthetic", "training problems: a dataset name or JSONL path (its train split is used)")
    test_fraction: float = _f(0.5, "share of the dataset held out for evaluation (stable hash of ids), as in eval")
    integer_answers: bool = _f(False, "keep only problems whose gold answer is an integer of <= 3 digits")
    max_turns: int = _f(3, "turns per episode before truncation")
    prompt_style: str = _f("", "`full` or `compact` prompt and response blocks (see CORL-Math-v0); empty: the "
                                "style the model was trained on (its corl_train.json), else full")
    seed: int = _f(0, "seed of the model, the envs, sampling and data order")
    time_limit_s: float = _f(0.0, "stop after this many seconds of training (what was trained is saved); 0: no limit")
    progress: bool = _f(True, "progress bar")

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
    """`--field-name VALUE` for every field of the dataclass `cls`, its help line as the help; numbers
    are checked as they are parsed (finite, >= 0), so a mistake is one line before anything runs.
    `--quiet` turns a `progress` field off; a `dataset` field brings `--allow-download`."""
    parser = cli_args.Parser(prog=prog, description=description)
    names = {f.name for f in dataclasses.fields(cls)}
    for f in dataclasses.fields(cls):
        parse = _VOCABULARY.get(f.name) or _BY_TYPE.get(type(f.default), type(f.default))
        flag = "--" + f.name.replace("_", "-")
        parser.add_argument(flag, type=parse, default=None, choices=f.metadata.get("choices"),
                            help=f"{f.metadata.get('help', '')} (default: {f.default!r})")
    if "progress" in names:
        parser.add_argument("--quiet", "-q", dest="progress", action="store_const", const=False,
                            help="no progress bars")
    if "dataset" in names:
        cli_args.add_allow_download(parser)
    return parser


def parse_config(cls: type, argv: Sequence[str], prog: str | None = None, **preset: Any) -> Any:
    """A `cls` from the command line; `preset` values replace defaults, explicit flags replace both."""
    args = cli_args.parse(build_parser(cls, prog, cls.__doc__), argv)
    values = {**preset, **{k: v for k, v in vars(args).items() if v is not None and k != "allow_download"}}
    return cls(**values)


def learner_main(cls: type, argv: Sequence[str] | None, prog: str | None, train: Callable[[Any], Path], *,
                 recipe: Callable[[str, list[str], str | None], int] | None = None, needs_model: bool = True) -> int:
    """A learner's command line: the config from `argv`, then `recipe(preset, argv, prog)` when the config
    names a preset, else `train(config)` and where the model was saved."""
    argv = list(sys.argv[1:] if argv is None else argv)
    cfg = parse_config(cls, argv, prog)
    if recipe is not None and cfg.preset:
        return recipe(cfg.preset, argv, prog)
    if needs_model and not cfg.model:
        raise cli_args.UsageError("--model is required (or --preset tiny-cpu)")
    path = train(cfg)
    if int(os.environ.get("RANK", "0")) == 0:  # under torchrun: one line, not one per process
        print(f"saved {path}; evaluate it with: corl-gym eval --checkpoint {cfg.out}")
    return 0

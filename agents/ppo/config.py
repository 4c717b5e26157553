"""PPO's configuration: one dataclass, a help line per field, and the command line built from it."""

from __future__ import annotations

import argparse
import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from corl_gym import cli_args


def _f(default: Any, help: str) -> Any:
    return field(default=default, metadata={"help": help})


@dataclass
class PPOConfig:
    """Token-level PPO for a controller LLM in CORL-Math-v0 (defaults: Search-R1 / Router-R1 at 7B)."""

    # model and output
    model: str = _f("", "folder of a transformers causal LM with its tokenizer (e.g. an SFT checkpoint)")
    out: str = _f("runs/ppo", "output folder: metrics.jsonl, checkpoints/, tensorboard/")
    preset: str = _f("", "`tiny-cpu`: build a tiny controller, SFT it, then PPO and evaluate (other flags override)")
    device: str = _f("auto", "`cpu`, `cuda` or `auto`")
    bf16: bool = _f(True, "bf16 weights on GPU (ignored on CPU)")
    # environment
    pool: str = _f("sim-paper", "expert pool name or YAML path")
    dataset: str = _f("synthetic", "training problems: a dataset name or JSONL path (its train split is used)")
    test_fraction: float = _f(0.5, "share of the dataset held out for evaluation (stable hash of ids)")
    integer_answers: bool = _f(False, "keep only problems whose gold answer is an integer of <= 3 digits")
    budget: str = _f("mixed", "budget mode of training episodes; `mixed` draws low/medium/high per episode")
    max_turns: int = _f(3, "turns per episode before truncation")
    prompt_style: str = _f("", "`full` or `compact` prompt and response blocks (see CORL-Math-v0); empty: the "
                                "style the model was trained on (its corl_train.json), else full")
    # rollout
    iterations: int = _f(100, "PPO iterations (rollout + update)")
    num_envs: int = _f(16, "episodes per iteration per process (one vector env of this size)")
    max_new_tokens: int = _f(96, "tokens per controller turn (checked at the start: a call to every expert must fit)")
    temperature: float = _f(1.0, "sampling temperature of rollouts (> 0); old, new and reference log-probs use it too")
    top_p: float = _f(1.0, "nucleus sampling of rollouts; old, new and reference log-probs use it too")
    # PPO
    actor_lr: float = _f(1e-6, "actor learning rate (Search-R1 / Router-R1 at 7B)")
    critic_lr: float = _f(1e-5, "critic learning rate")
    update_epochs: int = _f(1, "passes over each rollout batch")
    num_minibatches: int = _f(4, "minibatches per pass (one optimiser step each)")
    clip: float = _f(0.2, "policy ratio clip")
    dual_clip: float = _f(0.0, "dual-clip bound c > 1 on negative-advantage tokens' loss (-A * c); 0: off")
    max_log_ratio: float = _f(20.0, "the policy log-ratio is clamped to +-this before exp")
    vf_clip: float = _f(0.5, "value clip around the rollout's values")
    ent_coef: float = _f(0.0, "entropy bonus (entropy is logged either way)")
    kl_coef: float = _f(0.001, "KL-to-reference penalty in the per-token reward")
    gamma: float = _f(1.0, "discount over controller tokens")
    lam: float = _f(1.0, "GAE lambda")
    norm_adv: bool = _f(True, "whiten advantages over controller tokens")
    max_grad_norm: float = _f(1.0, "gradient clipping")
    critic_warmup: int = _f(0, "iterations that train the critic only")
    # bookkeeping
    seed: int = _f(0, "seed of models, envs, sampling")
    save_every: int = _f(10, "checkpoint every N iterations (and at the end)")
    resume: bool = _f(False, "continue from out/checkpoints/latest when it exists")
    time_limit_s: float = _f(0.0, "stop (and checkpoint) after this many seconds of training; 0: no limit")
    peak_flops: float = _f(790e12, "accelerator peak FLOP/s for perf/mfu/actor (H200 dense bf16 as in the issue)")
    tensorboard: bool = _f(True, "also log to TensorBoard when it is installed")
    progress: bool = _f(True, "progress bar")

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(dataclasses.asdict(self), indent=2))


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
        parser.add_argument(flag, type=parse, default=None, help=f"{f.metadata.get('help', '')} (default: {f.default!r})")
    if "progress" in names:
        parser.add_argument("--quiet", "-q", dest="progress", action="store_const", const=False, help="no progress bars")
    if "dataset" in names:
        cli_args.add_allow_download(parser)
    return parser


def parse_config(cls: type, argv: Sequence[str], prog: str | None = None, **preset: Any):
    """A `cls` from the command line; `preset` values replace defaults, explicit flags replace both."""
    args = cli_args.parse(build_parser(cls, prog, cls.__doc__), argv)
    values = {**preset, **{k: v for k, v in vars(args).items() if v is not None and k != "allow_download"}}
    return cls(**values)

"""`corl-gym eval --checkpoint DIR`: a controller checkpoint across budgets and datasets, in the bench's
table format; and the evaluations the training recipes run (`evaluate`, `copy_rate`).

Every (dataset, budget) plays the same held-out problems (the test split of `corl_gym.splits`, the
first `--limit`), greedy, one episode each, through a token-mode `CORLMathVectorEnv` (expert calls of a
batch concurrent). Rows have the bench's keys (`pool`, `dataset`, `seed`, `policy`, `budget`,
`problem_id`, `correct`, `reward`, `cost_usd`, `calls`, `turns`, `over_budget`) plus `action_errors`, so
`corl_gym.agents.report` summarises them; `eval.json` adds the well-formed action rate (turns
without an `action_error`). DIR is a model folder (`config.json` and tokenizer), a training run's output
folder (its latest checkpoint), or a checkpoint folder (its `actor/`). The run's `corl_train.json`, when
present, supplies defaults (pool, turns, problem filter) and the prompt style, which eval always takes
from the run (a controller is evaluated on the prompt it was trained on).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from corl_gym import cli_args
from corl_gym.agents.config import train_settings
from corl_gym.agents.report import write_report
from corl_gym.budget import BUDGET_MODES
from corl_gym.data import Problem, load_problems
from corl_gym.splits import select_problems


def resolve_checkpoint(path: str | Path) -> Path:
    """The model folder behind `corl-gym eval --checkpoint PATH` (see the module docstring)."""
    path = Path(path)
    for candidate in (path, path / "actor", path / "checkpoints" / "latest" / "actor"):
        if (candidate / "config.json").is_file():
            return candidate
    raise FileNotFoundError(f"no model under {path} (looked for config.json in ., actor/, checkpoints/latest/actor/)")


def load_controller(model_dir: str | Path, device: str = "cpu") -> tuple[Any, Any]:
    """(model, tokenizer) of a controller folder, the model in eval mode on `device`."""
    from transformers import AutoModelForCausalLM

    from corl_gym.agents.tiny import load_tokenizer

    tokenizer = load_tokenizer(model_dir)
    model = AutoModelForCausalLM.from_pretrained(str(model_dir)).to(device).eval()
    return model, tokenizer


def evaluate(model: Any, tokenizer: Any, *, pool: str = "sim-paper", datasets: Sequence[str] = ("synthetic",),
             budgets: Sequence[str] = BUDGET_MODES, limit: int | None = 100, seed: int = 0,
             test_fraction: float = 0.5, integer_answers: bool = False, max_turns: int = 3, max_new_tokens: int = 96,
             batch_size: int = 32, policy: str = "controller", prompt_style: str = "full",
             call_query: str = "") -> list[dict[str, Any]]:
    """One greedy episode per (dataset, budget, held-out problem); returns bench rows. `max_new_tokens` must
    hold a call to every expert (with `call_query`, the query the controller was taught, if any)."""
    from corl_gym.agents.llm import HFGenerator
    from corl_gym.agents.rollout import check_turn_budget, play
    from corl_gym.envs.vector import CORLMathVectorEnv

    generator = HFGenerator(model, tokenizer)
    rows = []
    for dataset in datasets:
        problems = select_problems(dataset, "test", test_fraction, integer_answers, limit)
        jobs = [(b, p) for b in budgets for p in problems]
        for start in range(0, len(jobs), batch_size):
            chunk = jobs[start : start + batch_size]
            envs = CORLMathVectorEnv(len(chunk), pool=pool, expert_seed=seed, problems=problems, tokenizer=tokenizer,
                                     max_turns=max_turns, budget="mixed", prompt_style=prompt_style)
            check_turn_budget(tokenizer, envs.expert_names, max_new_tokens, call_query)
            pins = [{"problem_id": p.id, "budget": b} for b, p in chunk]
            episodes, _ = play(envs, generator, seed=seed, max_new_tokens=max_new_tokens, temperature=0.0, pins=pins)
            envs.close()
            rows += [_row(e, pool, dataset, seed, policy) for e in episodes]
    return rows


def copy_rate(model: Any, tokenizer: Any, problems: Sequence[Problem], *, pool: str = "sim-paper",
              call_query: str = "", prompt_style: str = "full", max_new_tokens: int = 96, seed: int = 0,
              budgets: Sequence[str] = BUDGET_MODES, batch_size: int = 64) -> float:
    """The forced-call copy rate: each problem's episode begins with a call the controller did not choose
    (every budget with every expert, in turn; the query is `call_query`, else the problem), then the
    controller writes one turn, greedy. Returns the share of turns whose answer equals the expert's
    stated answer (right or wrong: copying is the skill measured, not accuracy); a turn that is not an
    answer, or a failed call, counts as not copied."""
    from corl_gym import verify
    from corl_gym.agents.llm import HFGenerator
    from corl_gym.envs.vector import CORLMathVectorEnv
    from corl_gym.protocol import AnswerAction, CallAction, parse_action, stated_answer

    generator, copied = HFGenerator(model, tokenizer), 0
    for start in range(0, len(problems), batch_size):
        chunk = list(problems[start : start + batch_size])
        envs = CORLMathVectorEnv(len(chunk), pool=pool, expert_seed=seed, problems=problems, tokenizer=tokenizer,
                                 max_turns=2, budget="mixed", prompt_style=prompt_style)
        names = envs.expert_names
        envs.reset(seed=seed + start, options=[{"problem_id": p.id, "budget": budgets[(start + i) % len(budgets)]}
                                               for i, p in enumerate(chunk)])
        calls = [CallAction(names[(start + i) // len(budgets) % len(names)], call_query or p.problem)
                 for i, p in enumerate(chunk)]
        observations, *_ = envs.step(calls)
        turns = generator.generate(list(observations), max_new_tokens=max_new_tokens, temperature=0.0)
        for reply, turn in zip(envs.last_replies, turns):
            action = parse_action(turn.text, names)
            if reply is not None and reply.error is None and isinstance(action, AnswerAction):
                copied += verify.is_equivalent(stated_answer(action.text), stated_answer(reply.text))
        envs.close()
    return copied / max(len(problems), 1)


def _row(e: Any, pool: str, dataset: str, seed: int, policy: str) -> dict[str, Any]:
    return {
        "pool": pool, "dataset": dataset, "seed": seed, "policy": policy, "budget": e.budget,
        "problem_id": e.problem_id, "correct": e.correct, "reward": e.reward, "cost_usd": e.cost_usd,
        "calls": e.calls, "turns": e.turns, "over_budget": e.over_budget, "action_errors": e.action_errors,
    }


def _parser(prog: str | None) -> argparse.ArgumentParser:
    parser = cli_args.Parser(prog=prog, description="Evaluate a controller checkpoint across budgets and datasets.")
    parser.add_argument("--checkpoint", required=True, help="model folder, checkpoint folder or training run folder")
    cli_args.add_budgets(parser)
    cli_args.add_dataset(parser, many=True, default_help="the run's, else synthetic")
    cli_args.add_pool(parser, default=None)
    cli_args.add_limit(parser, 100, "held-out problems per dataset")
    cli_args.add_seeds(parser)
    parser.add_argument("--max-turns", type=cli_args.positive_int, default=None, help="default: the run's, else 3")
    parser.add_argument("--max-new-tokens", type=cli_args.positive_int, default=None,
                        help="default: the run's, else 96")
    parser.add_argument("--integer-answers", choices=["true", "false"], default=None,
                        help="keep only integer answers of <= 3 digits (default: as the run was trained)")
    parser.add_argument("--batch-size", type=cli_args.positive_int, default=32, help="episodes per batch (default: 32)")
    parser.add_argument("--policy", default=None, help="policy name in the table (default: the folder name)")
    parser.add_argument("--device", default="cpu", help="torch device (default: cpu)")
    cli_args.add_out(parser, None, "folder for eval.json, eval.md, eval_rows.jsonl (default: the checkpoint)")
    cli_args.add_quiet(parser)
    return parser


def main(argv: Sequence[str] | None = None, prog: str | None = "corl-gym eval") -> int:
    args = cli_args.parse(_parser(prog), argv)
    return cli_args.run_verb(prog or "eval", _run, args)


def _run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    model_dir = resolve_checkpoint(args.checkpoint)
    settings = train_settings(model_dir)
    datasets = args.dataset or [settings.get("dataset", "synthetic")]
    for dataset in datasets:  # before the model loads: a mistake costs no wait
        select_problems(dataset, "test", settings.get("test_fraction", 0.5), required=True)
    model, tokenizer = load_controller(model_dir, args.device)
    units = [(seed, dataset, budget) for seed in args.seeds for dataset in datasets for budget in args.budgets]
    rows: list[dict[str, Any]] = []
    for seed, dataset, budget in tqdm(units, desc="eval", unit="block", disable=args.quiet):
        block = _evaluate_args(args, model, tokenizer, settings, model_dir, seed, dataset, budget)
        if not block:
            raise ValueError(f"dataset {dataset!r} has no held-out problems with an integer answer of <= 3 digits "
                             "(the run trained with integer answers only); pass --integer-answers false")
        rows += [{**row, "budget": cli_args.budget_label(budget)} for row in block]
    print(write_report(rows, args.out or model_dir, **_references(args, settings, rows, datasets)))
    return 0


def _references(args: argparse.Namespace, settings: dict[str, Any], rows: list[dict[str, Any]],
                datasets: list[str]) -> dict:
    """The curve metrics' reference rows (controller alone, single experts) on the same problems, and how
    the table should mark them."""
    from corl_gym.agents.episodes import run_references
    from corl_gym.experts import load_pool

    pool = args.pool or settings.get("pool", "sim-paper")
    reference_rows, references, notes = [], {}, {}
    for seed in args.seeds:
        for dataset in datasets:
            played = {r["problem_id"] for r in rows if r["dataset"] == dataset}
            problems = [p for p in load_problems(dataset) if p.id in played]
            found, names, note = run_references(pool, dataset, problems, args.budgets, seed, [rows[0]["policy"]])
            reference_rows += found
            references[(pool, dataset)], notes[(pool, dataset)] = names, note
    loaded = load_pool(pool)
    simulated, budgets = loaded.simulated, loaded.budgets
    loaded.close()
    return {"reference_rows": reference_rows, "references": references,
            "notes": {key: note for key, note in notes.items() if note},
            "simulated": [pool] if simulated else [], "budgets": {(pool, d): budgets for d in datasets}}


def _evaluate_args(args, model, tokenizer, settings, model_dir, seed, dataset, budget) -> list[dict[str, Any]]:
    return evaluate(
        model, tokenizer, pool=args.pool or settings.get("pool", "sim-paper"),
        datasets=[dataset], budgets=[budget],
        limit=args.limit or None, seed=seed, test_fraction=settings.get("test_fraction", 0.5),
        integer_answers=(settings.get("integer_answers", False) if args.integer_answers is None
                         else args.integer_answers == "true"),
        max_turns=args.max_turns or settings.get("max_turns", 3),
        max_new_tokens=args.max_new_tokens or settings.get("max_new_tokens", 96), batch_size=args.batch_size,
        policy=args.policy or _run_name(model_dir), prompt_style=settings.get("prompt_style", "full"),
        call_query=settings.get("call_query", ""),
    )


def _run_name(model_dir: Path) -> str:
    """`runs/x` for `runs/x/checkpoints/latest/actor`, `runs/x/actor` and `runs/x`."""
    parts = model_dir.parts
    if parts[-3:] == ("checkpoints", "latest", "actor"):
        return parts[-4] if len(parts) > 3 else "controller"
    return model_dir.parent.name if model_dir.name == "actor" else model_dir.name

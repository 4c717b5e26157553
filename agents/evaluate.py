"""`corl-gym eval --checkpoint DIR`: a controller checkpoint across budgets and datasets, in the bench's
table format.

Every (dataset, budget) plays the same held-out problems (the test split of `corl_gym.splits`, the
first `--limit`), greedy, one episode each, through a token-mode `CORLMathVectorEnv` (expert calls of a
batch concurrent). Rows have the bench's keys (`pool`, `dataset`, `seed`, `policy`, `budget`,
`problem_id`, `correct`, `reward`, `cost_usd`, `calls`, `turns`, `over_budget`) plus `action_errors`, so
`corl_gym.benchmarks.report` summarises them; `eval.json` adds the well-formed action rate (turns
without an `action_error`). DIR is a model folder (`config.json` and tokenizer), a training run's output
folder (its latest checkpoint), or a checkpoint folder (its `actor/`). The run's `corl_train.json`, when
present, supplies defaults (pool, turns, problem filter) and the prompt style, which eval always takes
from the run (a controller is evaluated on the prompt it was trained on).
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Any, Sequence

from corl_gym.data import Problem, load_problems
from corl_gym.splits import split_problems

TRAIN_CONFIG = "corl_train.json"


def select_problems(dataset: str, split: str, test_fraction: float = 0.5, integer_answers: bool = False,
                    limit: int | None = None) -> list[Problem]:
    """The `train` or `test` split of a dataset, optionally only integer answers of <= 3 digits."""
    train, test = split_problems(load_problems(dataset), test_fraction)
    problems = train if split == "train" else test
    if integer_answers:
        problems = [p for p in problems if re.fullmatch(r"-?\d{1,3}", p.answer.strip())]
    return problems[:limit] if limit else problems


def resolve_checkpoint(path: str | Path) -> Path:
    path = Path(path)
    for candidate in (path, path / "actor", path / "checkpoints" / "latest" / "actor"):
        if (candidate / "config.json").is_file():
            return candidate
    raise FileNotFoundError(f"no model under {path} (looked for config.json in ., actor/, checkpoints/latest/actor/)")


def train_settings(model_dir: Path) -> dict[str, Any]:
    for folder in (model_dir, *model_dir.parents[:3]):
        if (folder / TRAIN_CONFIG).is_file():
            return json.loads((folder / TRAIN_CONFIG).read_text())
    return {}


def load_controller(model_dir: str | Path, device: str = "cpu"):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    model = AutoModelForCausalLM.from_pretrained(str(model_dir)).to(device).eval()
    return model, tokenizer


def evaluate(model: Any, tokenizer: Any, *, pool: str = "sim-paper", datasets: Sequence[str] = ("synthetic",),
             budgets: Sequence[str] = ("low", "medium", "high"), limit: int | None = 100, seed: int = 0,
             test_fraction: float = 0.5, integer_answers: bool = False, max_turns: int = 3, max_new_tokens: int = 96,
             batch_size: int = 32, policy: str = "controller", prompt_style: str = "full",
             call_query: str = "") -> list[dict[str, Any]]:
    """One greedy episode per (dataset, budget, held-out problem); returns bench rows. `max_new_tokens` must
    hold a call to every expert (with `call_query`, the query the controller was taught, if any)."""
    from corl_gym.agents.llm import HFGenerator
    from corl_gym.agents.ppo.rollout import check_turn_budget, play
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
            check_turn_budget(tokenizer, envs.envs[0].expert_names, max_new_tokens, call_query)
            pins = [{"problem_id": p.id, "budget": b} for b, p in chunk]
            episodes, _ = play(envs, generator, seed=seed, max_new_tokens=max_new_tokens, temperature=0.0, pins=pins)
            envs.close()
            rows += [_row(e, pool, dataset, seed, policy) for e in episodes]
    return rows


def copy_rate(model: Any, tokenizer: Any, problems: Sequence[Problem], *, pool: str = "sim-paper",
              call_query: str = "", prompt_style: str = "full", max_new_tokens: int = 96, seed: int = 0,
              budgets: Sequence[str] = ("low", "medium", "high"), batch_size: int = 64) -> float:
    """The forced-call copy rate: each problem's episode begins with a call the controller did not choose
    (experts and budgets in turn; the query is `call_query`, else the problem), then the controller
    writes one turn, greedy. Returns the share of turns whose answer equals the expert's stated answer
    (right or wrong: copying is the skill measured, not accuracy)."""
    from corl_gym import verify
    from corl_gym.agents.llm import HFGenerator
    from corl_gym.envs.vector import CORLMathVectorEnv
    from corl_gym.protocol import AnswerAction, CallAction, parse_action, stated_answer

    generator, copied = HFGenerator(model, tokenizer), 0
    for start in range(0, len(problems), batch_size):
        chunk = list(problems[start : start + batch_size])
        envs = CORLMathVectorEnv(len(chunk), pool=pool, expert_seed=seed, problems=problems, tokenizer=tokenizer,
                                 max_turns=2, budget="mixed", prompt_style=prompt_style)
        names = envs.envs[0].expert_names
        for i, (env, problem) in enumerate(zip(envs.envs, chunk)):
            env.reset(seed=seed + start + i, options={"problem_id": problem.id, "budget": budgets[(start + i) % len(budgets)]})
        calls = [CallAction(names[(start + i) % len(names)], call_query or p.problem) for i, p in enumerate(chunk)]
        observations, *_ = envs.step(calls)
        turns = generator.generate(list(observations), max_new_tokens=max_new_tokens, temperature=0.0)
        for env, turn in zip(envs.envs, turns):
            action, reply = parse_action(turn.text, names), env.last_reply
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


def eval_summary(rows: Sequence[dict[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    """dataset -> budget -> `n`, `mean_reward`, `reward_se` (its standard error), `accuracy`,
    `mean_cost_usd`, `expert_call_ratio` (episodes with a call), `calls_per_expert` (mean calls per
    episode), `over_budget_rate`, `well_formed_rate` (turns without an action error)."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["dataset"], r["budget"]), []).append(r)
    for (dataset, budget), group in groups.items():
        n, turns = len(group), max(sum(r["turns"] for r in group), 1)
        rewards = [float(r["reward"]) for r in group]
        mean = sum(rewards) / n
        variance = sum((x - mean) ** 2 for x in rewards) / (n - 1) if n > 1 else 0.0
        experts = list(dict.fromkeys(e for r in group for e in r["calls"]))
        out.setdefault(dataset, {})[budget] = {
            "n": n,
            "mean_reward": mean,
            "reward_se": (variance / n) ** 0.5,
            "accuracy": sum(r["correct"] for r in group) / n,
            "mean_cost_usd": sum(r["cost_usd"] for r in group) / n,
            "expert_call_ratio": sum(any(r["calls"].values()) for r in group) / n,
            "calls_per_expert": {e: sum(r["calls"].get(e, 0) for r in group) / n for e in experts},
            "over_budget_rate": sum(r["over_budget"] for r in group) / n,
            "well_formed_rate": 1.0 - sum(r["action_errors"] for r in group) / turns,
        }
    return out


def write_report(rows: Sequence[dict[str, Any]], out: str | Path, name: str = "eval") -> str:
    """`<name>_rows.jsonl`, `<name>.json` and `<name>.md` (the bench's table) under `out`."""
    from corl_gym.benchmarks.report import report_markdown, summarize

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}_rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (out / f"{name}.json").write_text(json.dumps(eval_summary(rows), indent=2))
    markdown = report_markdown(summarize(rows), [])
    (out / f"{name}.md").write_text(markdown + "\n")
    return markdown


def _comma(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    parser = argparse.ArgumentParser(prog=prog, description="Evaluate a controller checkpoint across budgets and datasets.")
    parser.add_argument("--checkpoint", required=True, help="model folder, checkpoint folder or training run folder")
    parser.add_argument("--budgets", type=_comma, default=["low", "medium", "high"], help="comma list of budget modes")
    parser.add_argument("--dataset", type=_comma, default=None, help="comma list of datasets (default: the run's)")
    parser.add_argument("--pool", default=None, help="expert pool (default: the run's, else sim-paper)")
    parser.add_argument("--limit", type=int, default=100, help="held-out problems per dataset (0: all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-turns", type=int, default=None, help="default: the run's, else 3")
    parser.add_argument("--max-new-tokens", type=int, default=None, help="default: the run's, else 96")
    parser.add_argument("--integer-answers", choices=["true", "false"], default=None,
                        help="keep only integer answers of <= 3 digits (default: as the run was trained)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--policy", default=None, help="policy name in the table (default: the folder name)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", default=None, help="folder for eval.json, eval.md, eval_rows.jsonl (default: the checkpoint)")
    args = parser.parse_args(list(argv or []))
    try:
        model_dir = resolve_checkpoint(args.checkpoint)
    except FileNotFoundError as exc:
        parser.exit(2, f"{parser.prog}: error: {exc}\n")
    settings = train_settings(model_dir)
    model, tokenizer = load_controller(model_dir, args.device)
    try:
        rows = _evaluate_args(args, model, tokenizer, settings, model_dir)
    except (ValueError, FileNotFoundError) as exc:  # unknown dataset or pool, missing data file
        parser.exit(2, f"{parser.prog}: error: {exc}\n")
    print(write_report(rows, args.out or model_dir))
    return 0


def _evaluate_args(args, model, tokenizer, settings, model_dir) -> list[dict[str, Any]]:
    return evaluate(
        model, tokenizer, pool=args.pool or settings.get("pool", "sim-paper"),
        datasets=args.dataset or [settings.get("dataset", "synthetic")], budgets=args.budgets,
        limit=args.limit or None, seed=args.seed, test_fraction=settings.get("test_fraction", 0.5),
        integer_answers=settings.get("integer_answers", False) if args.integer_answers is None else args.integer_answers == "true",
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

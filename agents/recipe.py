"""`corl-gym train --learner ppo|trl-grpo --preset tiny-cpu`: the whole method on a laptop, with fixed
amounts of work sized for at most 15 minutes on 2 idle CPU cores. One runner for both learners; a
learner takes part through a `RecipeLearner` (its config, its `train`, how far a run got), so this
module imports no learner and the learners' `main`s can call it.

1. SFT start (`agents.sft`, `agents.copy_skill`), unless `--model` names one: a byte-level BPE tokenizer
   trained on the env's own texts and a 0.2M-parameter Qwen2 with random weights; copy pretraining on
   random repeat sequences (the induction skill a model trained from scratch lacks); then SFT on
   compact-style demonstrations of `synthetic`'s training split with `sim-paper`. The teachers answer
   alone or call one of the 3 experts (with the short query `Solve it.`) and copy its boxed answer, each
   equally often among those whose expected cost fits the episode's budget (`--teachers-within-budget`):
   the start keeps to the budget rule its prompt states, and which affordable choice earns most is left
   to RL (from a budget-blind mix the start ignored the budget, and PPO settled on gpt-4.1-nano at every
   budget). Each demonstration plays a random answer (see `agents.sft`), so the answer turn can only be
   learned as a copy.
2. Copy check: the held-out forced-call copy rate (`agents.evaluate.copy_rate`). Below 0.95 the preset
   stops here with a message, before RL: a controller that cannot quote an expert earns nothing by
   calling one, and RL would only learn to avoid the experts.
3. Evaluate the SFT start: held-out problems x low / medium / high, greedy.
4. Train with the learner (PPO: `agents.ppo.train`; GRPO: `agents.trl`) from the SFT start, budget
   modes mixed per episode. GRPO takes PPO's task, rollout and budget from the same preset.
5. Evaluate the trained policy the same way; write `eval.json` (both policies per budget, the copy rate,
   the references on the same problems, wall time per phase, `complete`, and what the learner adds:
   PPO's targets and `curves.png`) and `eval_table.md` (the bench's table).

Problems are restricted to integer answers of at most 3 digits, one token each for the tiny tokenizer.
The amounts of work are fixed (steps, iterations), so results do not depend on how busy the machine is: a
busy machine takes longer instead of training less. Training has a wall-clock cap as a safety net only; a
run it cuts, or one whose copy check fails, writes `complete: false` with the reason and is not a result.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from corl_gym.agents.config import parse_config, train_settings
from corl_gym.agents.evaluate import copy_rate, evaluate, load_controller
from corl_gym.agents.report import eval_summary, write_report
from corl_gym.agents.sft import SFTConfig, run_sft
from corl_gym.budget import BUDGET_MODES
from corl_gym.cli_args import UsageError
from corl_gym.splits import select_problems

CALL_QUERY = "Solve it."
PRESETS: dict[str, dict[str, Any]] = {
    "tiny-cpu": {
        "ppo": dict(
            out="runs/tiny-cpu", device="cpu", integer_answers=True, max_turns=2, prompt_style="compact",
            num_envs=32, max_new_tokens=20, iterations=60, actor_lr=3e-4, critic_lr=1e-3, num_minibatches=2,
            update_epochs=2, kl_coef=0.001, ent_coef=0.0, save_every=10, time_limit_s=1800.0, tensorboard=True,
        ),
        "sft": dict(size="micro", prompt_style="compact", call_query=CALL_QUERY, random_answers=True,
                    teachers="always-self,always:*", episodes=1200, epochs=5, batch_size=16, lr=1e-3, warmup_steps=20,
                    teachers_within_budget=True, copy_short_steps=2000, copy_long_steps=1000, copy_rows=8),
        "copy_check": dict(problems=300, min_rate=0.95),
        "eval": dict(limit=100, batch_size=100),
    },
}


def _nothing_more(cfg: Any, model_dir: Path, result: dict[str, Any]) -> dict[str, Any]:
    return {}


def _no_finish(out: Path, result: dict[str, Any]) -> None:
    return None


@dataclass(frozen=True)
class RecipeLearner:
    """A learner as the recipe runs it. `train` is passed in, not imported: the learner's module imports
    this one to run its preset."""

    name: str  # in messages: "PPO", "GRPO"
    key: str  # eval.json's field for the trained policy, and its phases' wall times (`ppo`, `eval_ppo`)
    policy: str  # the trained policy's name in the table
    config: type  # the learner's config class (an `agents.config.RLConfig`)
    defaults: Callable[[str], dict[str, Any]]  # a preset's values for that config
    train: Callable[[Any], Path]  # config -> the trained model's folder
    progress: Callable[[Any, Path], tuple[int, int, str]]  # (done, planned, unit) of the finished training
    extras: Callable[[Any, Path, dict[str, Any]], dict[str, Any]] = _nothing_more  # more eval.json fields
    finish: Callable[[Path, dict[str, Any]], None] = _no_finish  # after eval.json is written


def run_preset(learner: RecipeLearner, name: str, argv: Sequence[str], prog: str | None = None) -> int:
    """The preset `name` with `learner`: explicit flags in `argv` override the preset's values. Returns
    the exit status: 0 for a complete run, 1 for a stopped or cut one."""
    if name not in PRESETS:
        raise UsageError(f"unknown preset {name!r}; presets: {', '.join(PRESETS)}")
    preset = PRESETS[name]
    cfg = parse_config(learner.config, argv, prog, **learner.defaults(name))
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    report = Report(out, name, cfg.dataset, cfg.pool)
    start = sft_start(cfg, preset, Path(cfg.model or out / "sft"), report, build=not cfg.model)
    if not report.copy_passed(preset["copy_check"]["min_rate"]):
        return report.stop(f"copy check failed: the SFT start copied the expert's answer in "
                           f"{report.result['copy_rate']:.3f} of held-out forced calls, below "
                           f"{preset['copy_check']['min_rate']}; {learner.name} was not run")
    settings = eval_settings(cfg, preset, start)
    with report.phase("eval_sft"):
        start_rows = evaluate(*load_controller(start), policy="sft", **settings)
    with report.phase(learner.key):
        model_dir = learner.train(dataclasses.replace(cfg, model=str(start), preset=""))
    done, planned, unit = learner.progress(cfg, model_dir)
    if done < planned:
        report.cut(f"{learner.name} stopped at its {cfg.time_limit_s:.0f} s time cap after {done} of {planned} {unit}")
    with report.phase(f"eval_{learner.key}"):
        trained_rows = evaluate(*load_controller(model_dir), policy=learner.policy, **settings)

    markdown = write_report(start_rows + trained_rows, out, "eval_table")
    report.result.update({learner.key: eval_summary(trained_rows)[cfg.dataset],
                          "sft_start": eval_summary(start_rows)[cfg.dataset],
                          "references": reference_rewards(cfg, start_rows)})
    report.result.update(learner.extras(cfg, model_dir, report.result))
    report.write()
    print(markdown)
    learner.finish(out, report.result)
    return report.finish()


def sft_start(cfg: Any, preset: dict[str, Any], sft_dir: Path, report: Report, build: bool = True) -> Path:
    """The preset's SFT start in `sft_dir` (built there when `build`, unless a resumed run finds it) and its
    copy check, recorded in `report`."""
    if build and not (getattr(cfg, "resume", False) and (sft_dir / "config.json").is_file()):
        shared = dict(pool=cfg.pool, dataset=cfg.dataset, test_fraction=cfg.test_fraction, seed=cfg.seed,
                      integer_answers=cfg.integer_answers, max_turns=cfg.max_turns, progress=cfg.progress)
        with report.phase("sft"):
            run_sft(SFTConfig(out=str(sft_dir), **shared, **preset["sft"]))
    check = preset["copy_check"]
    with report.phase("copy_check"):
        problems = select_problems(cfg.dataset, "test", cfg.test_fraction, cfg.integer_answers, check["problems"])
        rate = copy_rate(*load_controller(sft_dir), problems, pool=cfg.pool, call_query=preset["sft"]["call_query"],
                         prompt_style=preset["sft"]["prompt_style"], max_new_tokens=cfg.max_new_tokens, seed=cfg.seed)
    report.result.update(copy_rate=rate, copy_check={"problems": len(problems), "min_rate": check["min_rate"]})
    print(f"copy check: {rate:.3f} of {len(problems)} held-out forced calls copied the expert's answer")
    return sft_dir


def eval_settings(cfg: Any, preset: dict[str, Any], start: Path) -> dict[str, Any]:
    """How both policies are evaluated: the held-out problems of the training set, in the prompt style the
    learner trains in, with the call query the start was taught (`max_new_tokens` must hold it)."""
    trained_on = train_settings(start)
    return dict(pool=cfg.pool, datasets=[cfg.dataset], test_fraction=cfg.test_fraction,
                integer_answers=cfg.integer_answers, max_turns=cfg.max_turns, max_new_tokens=cfg.max_new_tokens,
                seed=cfg.seed, prompt_style=cfg.prompt_style or trained_on.get("prompt_style", "full"),
                call_query=trained_on.get("call_query", ""),
                limit=getattr(cfg, "eval_limit", preset["eval"]["limit"]),  # GRPO has a flag for it
                batch_size=preset["eval"]["batch_size"])


def reference_rewards(cfg: Any, rows: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """budget -> mean reward of answering alone and of always calling each expert, on the evaluated
    problems (the bench's scripted references, each expert's answer copied exactly): the ceiling of a
    single fixed choice per budget, which is what the controller can learn here."""
    from corl_gym.agents.episodes import run_references  # the routers: only at the end of a run
    from corl_gym.data import load_problems

    ids = {r["problem_id"] for r in rows}
    problems = [p for p in load_problems(cfg.dataset) if p.id in ids]
    budgets = sorted({r["budget"] for r in rows}, key=BUDGET_MODES.index)
    found, _, _ = run_references(cfg.pool, cfg.dataset, problems, budgets, cfg.seed, [])
    table: dict[str, dict[str, float]] = {b: {} for b in budgets}
    for budget in budgets:
        for policy in dict.fromkeys(r["policy"] for r in found):
            group = [r["reward"] for r in found if r["policy"] == policy and r["budget"] == budget]
            table[budget][policy] = sum(group) / max(len(group), 1)
    return table


class Report:
    """`eval.json` as it grows: wall time per phase, the copy check, whether the run is complete."""

    def __init__(self, out: Path, preset: str, dataset: str, pool: str):
        self.out, self.began = out, time.perf_counter()
        self.result: dict[str, Any] = {"preset": preset, "dataset": dataset, "pool": pool, "command": _command(),
                                       "complete": True, "incomplete_reason": None, "wall_s": {}}

    def phase(self, name: str) -> _Phase:
        return _Phase(self.result["wall_s"], name)

    def copy_passed(self, min_rate: float) -> bool:
        return self.result["copy_rate"] >= min_rate

    def cut(self, reason: str) -> None:
        self.result.update(complete=False, incomplete_reason=reason)

    def write(self) -> None:
        self.result["wall_s"]["total"] = time.perf_counter() - self.began
        (self.out / "eval.json").write_text(json.dumps(self.result, indent=2))

    def stop(self, reason: str) -> int:
        self.cut(reason)
        self.write()
        print(f"stopped: {reason}. {self.out / 'eval.json'} says complete: false.", file=sys.stderr)
        return 1

    def finish(self) -> int:
        wall = self.result["wall_s"]["total"]
        if not self.result["complete"]:
            print(f"INCOMPLETE, not a result: {self.result['incomplete_reason']} (see {self.out / 'eval.json'})",
                  file=sys.stderr)
            return 1
        names = ("eval.json", "eval_table.md", "curves.png")  # curves.png: only a learner that draws them
        written = [self.out / name for name in names if (self.out / name).exists()]
        print(f"wrote {', '.join(map(str, written))}; wall {wall:.0f} s")
        return 0


class _Phase:
    def __init__(self, times: dict[str, float], name: str):
        self.times, self.name = times, name

    def __enter__(self):
        self.t0 = time.perf_counter()

    def __exit__(self, *exc: Any) -> None:
        self.times[self.name] = self.times.get(self.name, 0.0) + time.perf_counter() - self.t0


def _command() -> str:
    return " ".join(["corl-gym" if sys.argv[0].endswith("corl-gym") else sys.argv[0], *sys.argv[1:]])

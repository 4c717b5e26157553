"""SFT warm start: clone scripted routers' trajectories so a small controller learns the action grammar,
and to copy an expert's answer, before RL.

    corl-gym train --learner sft --model DIR --out runs/sft            # any transformers causal LM
    corl-gym train --learner sft --size tiny-cpu --out runs/sft        # a tiny Qwen2 + tokenizer built here

Demonstrations are episodes of `CORL-Math-v0` in token mode played by the routers of
`corl_gym.agents.routers`, one teacher drawn per episode from `--teachers`. The loss is the
cross-entropy of the controller's own tokens only (the trajectory's `action_mask`; the prompt and the
env's blocks are context), averaged over those tokens with a `clamp(min=1)` denominator.

The default teacher mix is uniform over answering itself and calling each expert (then copying its
boxed answer), whatever the budget: the `random` router's distribution, with each choice as its own
teacher. It is budget-blind on purpose, since which expert each budget affords is what RL has to learn;
a mix tuned per budget would hand RL the answer, and one tuned against the budget would handicap the
start. SFT teaches the grammar, that every choice is possible, and the copy.

`--teachers-within-budget` draws each episode's teacher only among those whose expected cost fits its
threshold (answering alone always does): the start then reads the budget and keeps to the rule its
prompt states, and RL still chooses among the affordable options. The tiny-cpu preset uses it: from a
budget-blind start its micro model never learned to read the budget within the PPO phase.

Three options make the copy learnable by a small model trained from scratch (the tiny-cpu preset):

- `--call-query TEXT`: every teacher call sends TEXT instead of the whole problem, so a call turn is a
  few tokens. A simulated expert answers the episode's problem whatever the wording (it cannot read the
  query); with a real expert the query should carry the problem, so leave this empty.
- `--random-answers`: each demonstration plays a training problem whose gold answer is replaced by a
  random one (`random_answer`), so the expert replies and the copied answer carry a number that only the
  reply holds. A model can then lower its loss on the answer turn only by copying from the reply, never
  by recalling a training problem's answer; the first turn (the choice) is unchanged. The replies still
  follow the simulated experts' accuracy (a wrong expert's number is a plausible wrong one).
- `--copy-short-steps`, `--copy-long-steps`, `--copy-rows`: copy pretraining before SFT, and copy
  sequences mixed into every SFT batch (`corl_gym.agents.copy_skill`: the induction skill that a
  pretrained LLM brings and a model trained from scratch lacks).
"""

from __future__ import annotations

import dataclasses
import json
import math
import random
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from corl_gym.agents.config import TRAIN_CONFIG, LearnerConfig, _f, learner_main
from corl_gym.agents.rollout import Episode


@dataclass
class SFTConfig(LearnerConfig):
    """SFT warm start: clone scripted routers' token-mode trajectories (loss on the controller's tokens)."""

    model: str = _f("", "folder of a transformers causal LM with its tokenizer; empty: build one of --size")
    out: str = _f("runs/sft", "output folder: the model and tokenizer, corl_train.json, sft_metrics.jsonl")
    prompt_style: str = _f("full", "`full` or `compact` prompt and response blocks (see CORL-Math-v0)")
    size: str = _f("tiny-cpu", "with no --model: a Qwen2 of this size (agents.tiny.SIZES) and a tokenizer trained here")
    teachers: str = _f("always-self,always:*", "comma list of routers (NAME=K: weight K), one drawn per episode; "
                                                "always:* = each expert")
    episodes: int = _f(1024, "demonstration episodes")
    epochs: int = _f(2, "passes over the demonstrations")
    batch_size: int = _f(16, "trajectories per optimiser step")
    lr: float = _f(1e-3, "peak learning rate (linear warmup, cosine decay)")
    warmup_steps: int = _f(10, "warmup steps")
    call_query: str = _f("", "sub-query of every teacher call; empty: the whole problem (see the module docstring)")
    random_answers: bool = _f(False, "give each demonstration's problem a random integer answer "
                                     "(see the module docstring)")
    teachers_within_budget: bool = _f(False, "draw each episode's teacher among those whose expected cost fits "
                                             "its budget")
    copy_short_steps: int = _f(0, "copy pretraining before SFT: steps on short repeat sequences (agents.copy_skill)")
    copy_long_steps: int = _f(0, "copy pretraining: then steps on sequences as long as the env's contexts")
    copy_lr: float = _f(3e-3, "learning rate of copy pretraining")
    copy_rows: int = _f(0, "long repeat sequences added to every SFT batch, so the copy skill survives SFT")


def teacher_names(spec: str, expert_names: Sequence[str]) -> list[str]:
    """`"always-self=4,always:*"` -> always-self four times, then `always:<e>` once per expert: a
    teacher is drawn uniformly from this list, so repeats are weights."""
    names = []
    for item in (n.strip() for n in spec.split(",") if n.strip()):
        name, _, weight = item.partition("=")
        expanded = [f"always:{e}" for e in expert_names] if name == "always:*" else [name]
        names += expanded * int(weight or 1)
    return names


def collect_demos(tokenizer: Any, problems: list, pool: str, teachers: Sequence[str], episodes: int,
                  max_turns: int, seed: int, *, prompt_style: str = "full", call_query: str = "",
                  random_answers: bool = False, within_budget: bool = False) -> list[Episode]:
    """Token-mode episodes of the teachers; each turn's ids are exactly what the env appended for it.
    `call_query`, `random_answers` and `within_budget`: see the module docstring."""
    from corl_gym.agents.routers import make_router
    from corl_gym.envs.math_env import CORLMathEnv
    from corl_gym.protocol import CallAction

    rng = random.Random(seed)
    if random_answers:  # one problem per episode, pinned by index (ids repeat, answers differ)
        answers = [p.answer for p in problems]
        problems = [dataclasses.replace(rng.choice(problems), answer=random_answer(rng, answers))
                    for _ in range(episodes)]
    env = CORLMathEnv(pool=pool, problems=problems, tokenizer=tokenizer, max_turns=max_turns, budget="mixed",
                      expert_seed=seed, prompt_style=prompt_style)
    routers = {name: make_router(name, seed) for name in set(teachers)}
    demos = []
    for k in range(episodes):
        obs, info = env.reset(seed=seed + k, options={"problem_index": k} if random_answers else None)
        router = routers[rng.choice(affordable_teachers(env, teachers, info) if within_budget else teachers)]
        router.reset(env, info)
        episode = Episode.begin(obs, info["budget_mode"], info["problem_id"])
        done = False
        while not done:
            action = router.act(obs, info)
            if call_query and isinstance(action, CallAction):
                action = CallAction(action.expert, call_query)
            obs, reward, terminated, truncated, info = env.step(action)
            turn = obs[len(episode.ids) : len(obs) - len(info["env_token_ids"])]  # what the env appended for it
            episode.add_step(turn, info, reward, terminated, truncated)
            done = terminated or truncated
        demos.append(episode)
    env.close()
    return demos


def affordable_teachers(env: Any, teachers: Sequence[str], info: dict[str, Any]) -> list[str]:
    """The teachers whose expert is affordable on this episode (`routers.affordable_experts`); teachers
    that call no fixed expert always qualify."""
    from corl_gym.agents.router_base import affordable_experts

    affordable = affordable_experts(env, info["threshold_usd"])
    return [n for n in teachers if not n.startswith("always:") or n.split(":", 1)[1] in affordable] or list(teachers)


def random_answer(rng: random.Random, answers: Sequence[str]) -> str:
    """Half the time another training problem's gold answer (the real answers' distribution, small numbers
    included, which also occur in expert names and prices: the clone must learn to stop copying after
    the number), else a uniform integer of at most 3 digits, either sign (every number token)."""
    return rng.choice(answers) if rng.random() < 0.5 else str(rng.randint(-999, 999))


def sft_loss(model: Any, batch: dict[str, Any]):
    """Cross-entropy of the controller's tokens, a mean over them."""
    from corl_gym.agents.logprobs import masked_sum_mean, model_logprobs

    logprobs, _ = model_logprobs(model, batch)
    return -masked_sum_mean(logprobs, batch["action_mask"][:, 1:])


def train_sft(model: Any, tokenizer: Any, demos: list[Episode], cfg: SFTConfig, log_path: Path | None = None,
              max_steps: int | None = None) -> list[float]:
    """AdamW with warmup and cosine decay over `epochs` passes; returns the loss of every step. With
    `cfg.copy_rows`, each step adds the copy task's loss on that many long repeat sequences."""
    import torch

    from corl_gym.agents.copy_skill import LONG, copy_loss, optimizer_step, repeat_batch
    from corl_gym.agents.rollout import collate

    rng, copy_rng = np.random.default_rng(cfg.seed), np.random.default_rng(cfg.seed + 1)
    copy_stage = dataclasses.replace(LONG, batch_size=cfg.copy_rows)
    steps_per_epoch = math.ceil(len(demos) / cfg.batch_size)
    total = steps_per_epoch * cfg.epochs if max_steps is None else min(max_steps, steps_per_epoch * cfg.epochs)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.01, betas=(0.9, 0.95))
    bar = _bar(cfg, total)
    losses, began = [], time.perf_counter()
    model.train()
    for step in range(total):
        if step % steps_per_epoch == 0:
            order = rng.permutation(len(demos))
        rows = order[(step % steps_per_epoch) * cfg.batch_size : (step % steps_per_epoch + 1) * cfg.batch_size]
        batch = collate([demos[i] for i in rows], tokenizer.pad_token_id, next(model.parameters()).device)
        lr = _learning_rate(cfg, step, total, time.perf_counter() - began)
        for group in optimizer.param_groups:
            group["lr"] = lr
        loss = sft_loss(model, batch)
        if cfg.copy_rows:
            loss = loss + copy_loss(model, *repeat_batch(copy_rng, copy_stage, len(tokenizer)))
        losses.append(optimizer_step(model, optimizer, loss))
        if log_path is not None:
            with log_path.open("a") as f:
                f.write(json.dumps({"step": step + 1, "sft/loss": losses[-1], "sft/lr": lr}) + "\n")
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{losses[-1]:.3f}")
        if cfg.time_limit_s and time.perf_counter() - began > cfg.time_limit_s:
            break
    if bar is not None:
        bar.close()
    model.eval()
    return losses


def _learning_rate(cfg: SFTConfig, step: int, total: int, elapsed_s: float) -> float:
    """Linear warmup, then cosine decay over whichever runs out first: the steps or the time limit."""
    progress = step / max(total, 1)
    if cfg.time_limit_s:
        progress = max(progress, elapsed_s / cfg.time_limit_s)
    warmup = min((step + 1) / max(cfg.warmup_steps, 1), 1.0)
    return cfg.lr * warmup * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))


def _bar(cfg: SFTConfig, total: int):
    if not cfg.progress:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="sft", unit="step", dynamic_ncols=True)


def build_tiny(folder: Path, pool_name: str, problems: list, size: str, seed: int, call_query: str = ""):
    """A tokenizer trained on the env's texts and a random tiny Qwen2 (see `agents.tiny`)."""
    from corl_gym.agents.tiny import env_corpus, tiny_qwen2, train_tokenizer
    from corl_gym.experts import load_pool

    pool = load_pool(pool_name, seed=seed)
    tokenizer = train_tokenizer(env_corpus(pool, problems, call_query=call_query), folder)
    pool.close()
    return tiny_qwen2(len(tokenizer), size, seed=seed), tokenizer


def pretrain_copy_skill(model: Any, vocab_size: int, cfg: SFTConfig, log_path: Path) -> None:
    """`cfg.copy_short_steps` then `cfg.copy_long_steps` of copy pretraining (`agents.copy_skill`), logged
    to `log_path`; nothing when both are 0."""
    from corl_gym.agents.copy_skill import LONG, SHORT, pretrain_copy

    log_path.unlink(missing_ok=True)
    stages = [dataclasses.replace(SHORT, steps=cfg.copy_short_steps),
              dataclasses.replace(LONG, steps=cfg.copy_long_steps)]
    stages = [stage for stage in stages if stage.steps]
    if not stages:
        return

    def log(step: int, metrics: dict[str, float]) -> None:
        with log_path.open("a") as f:
            f.write(json.dumps({"step": step, **metrics}) + "\n")

    pretrain_copy(model, vocab_size, stages, cfg.copy_lr, cfg.seed, cfg.progress, log)


def run_sft(cfg: SFTConfig) -> Path:
    """Demonstrations, training, and the model saved under `cfg.out` (with `corl_train.json`)."""
    import torch

    from corl_gym.splits import select_problems

    torch.manual_seed(cfg.seed)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    problems = select_problems(cfg.dataset, "train", cfg.test_fraction, cfg.integer_answers)
    if cfg.model:
        from transformers import AutoModelForCausalLM

        from corl_gym.agents.tiny import load_tokenizer

        tokenizer, model = load_tokenizer(cfg.model), AutoModelForCausalLM.from_pretrained(cfg.model)
    else:
        model, tokenizer = build_tiny(out, cfg.pool, problems, cfg.size, cfg.seed, cfg.call_query)
    from corl_gym.experts import load_pool

    pool = load_pool(cfg.pool, seed=cfg.seed)
    teachers = teacher_names(cfg.teachers, pool.expert_names())
    pool.close()
    pretrain_copy_skill(model, len(tokenizer), cfg, out / "copy_metrics.jsonl")
    demos = collect_demos(tokenizer, problems, cfg.pool, teachers, cfg.episodes, cfg.max_turns, cfg.seed,
                          prompt_style=cfg.prompt_style, call_query=cfg.call_query, random_answers=cfg.random_answers,
                          within_budget=cfg.teachers_within_budget)
    (out / "sft_metrics.jsonl").unlink(missing_ok=True)
    train_sft(model, tokenizer, demos, cfg, out / "sft_metrics.jsonl")
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    settings = {"pool": cfg.pool, "dataset": cfg.dataset, "test_fraction": cfg.test_fraction,
                "integer_answers": cfg.integer_answers, "max_turns": cfg.max_turns, "prompt_style": cfg.prompt_style,
                "call_query": cfg.call_query, "teachers": cfg.teachers,
                "teachers_within_budget": cfg.teachers_within_budget}
    (out / TRAIN_CONFIG).write_text(json.dumps(settings, indent=2))
    return out


def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    return learner_main(SFTConfig, argv, prog, run_sft, needs_model=False)


if __name__ == "__main__":
    sys.exit(main())

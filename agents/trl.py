"""TRL's `GRPOTrainer` on `CORL-Math-v0`: multi-turn episodes in token mode through `rollout_func`.

    corl-gym train --learner trl-grpo --preset tiny-cpu                 # SFT, GRPO, eval (agents.recipe)
    corl-gym train --learner trl-grpo --model SFT_DIR --episodes 640    # GRPO from any causal LM folder
    python -m corl_gym.agents.trl --preset tiny-cpu --model runs/tiny-cpu/sft --out runs/grpo   # same flags

Each prompt row of the dataset names a training problem and a budget mode (a JSON key, not text: see
trap 2). `CORLRollout` plays one episode per row through a token-mode `CORLMathVectorEnv` with the
learners' shared `agents.rollout.play` and `HFGenerator` (the controller's ids appended verbatim, expert
calls of a batch concurrent), and returns the whole multi-turn trajectory after the prompt as the completion:
`turn | env block | turn | ...`, with `env_mask` 1 exactly on the controller's ids. The reward function
`env_reward` passes the env's episode reward through. The learner is GRPO (group-normalised episode
reward as every controller token's advantage, clipped ratio, optional k3 KL to a reference), so the
same env, generator, SFT start and eval as PPO; what differs is the learner.

The contract (trl 1.16; `rollout_func` is marked experimental there; `setup.cfg` pins the tested range:
1.15.0 fails on CPU, because its log-prob path needs Triton and the CPU build of torch has none):

- `rollout_func(prompts: list, trainer: GRPOTrainer) -> dict`; required keys `prompt_ids`,
  `completion_ids`, `logprobs` (lists of per-row lists); every other key is an "extra field": a list is
  split per row (`inputs[i][key] = value[i]`) and reaches the reward functions as a keyword argument;
  `env_mask` is popped first and used as the tool mask: loss, KL and entropy are averaged over
  `completion_mask * env_mask` (right-padded with 1, where `completion_mask` is 0).

Traps, each handled here:

1. The prompts arrive already repeated `num_generations` times, consecutively (the `RepeatSampler`;
   TRL's docstring says "no duplication": the trainer adds none on top of that). Play exactly one
   episode per row, in order, never `num_generations` per prompt (advantages are normalised over
   consecutive blocks of `num_generations` rows). vLLM helpers that take unique prompts and
   `n=num_generations` would need `prompts[::num_generations]` instead; we do not use them.
2. `rollout_func` receives the prompts only, not the dataset's other columns: whatever the episode
   needs (problem id, budget) must be recoverable from the prompt itself. Our prompts are JSON keys.
   All rows of a group must play the same problem and budget, with different sampling noise
   (temperature > 0, else every group has zero reward spread and zero advantage).
3. `logprobs` is required even when no vLLM correction uses it, one value per completion id (padded
   separately, so a length mismatch would misalign silently): sampled log-probs on controller ids, 0.0
   on env ids.
4. `env_mask` is honoured only when the trainer has no `tools`: with tools, TRL's tool loop overwrites
   it. Do not pass tools.
5. The completion text TRL hands reward functions is the decoded multi-turn completion, expert replies
   included: grading that text would credit an answer the controller never gave. The reward comes from
   the env (`env_reward` extra field), never from parsing `completions`.
6. TRL marks a completion "truncated" when its last id is not EOS or pad; a multi-turn completion ends
   in the controller's `</answer>` ids, so `completions/clipped_ratio` reads ~1 and is meaningless, and
   `mask_truncated_completions=True` would mask every episode out of the loss: it stays False.
7. `max_completion_length` is ignored by `rollout_func`: length is bounded by `max_turns` x
   `max_new_tokens` plus the env's blocks.
8. GRPOConfig defaults are GPU ones: `bf16=True` (off here on CPU) and `gradient_checkpointing=True`
   (always off here; transformers 5 renames it `activation_checkpointing`); CPU needs `use_cpu`.
   `beta` defaults to 0.0 (no KL); with `beta > 0` the reference model is loaded again from
   `model.config._name_or_path`, so pass a model folder, not an in-memory model.
9. Generation without vLLM: the trainer's own model (unwrapped from accelerate) generates, switched to
   eval mode and back, under `no_grad`; `generation_batch_size = per_device_train_batch_size *
   steps_per_generation` must be a multiple of `num_generations`, and with `steps_per_generation > 1` TRL
   computes the old log-probs itself (importance ratio of the later minibatches).
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

from corl_gym.agents.config import TRAIN_CONFIG, RLConfig, _f, learner_main, train_settings
from corl_gym.agents.recipe import PRESETS, RecipeLearner, run_preset


@dataclass
class GRPOConfig(RLConfig):
    """GRPO (TRL) on CORL-Math-v0: the flags of `corl-gym train --learner trl-grpo`."""

    out: str = _f("runs/trl-grpo", "output folder: actor/ (the trained model), metrics.jsonl, eval.json")
    budgets: str = _f("low,medium,high", "budget modes mixed in training (one dataset row per problem x mode)")
    episodes: int = _f(640, "sampled episodes in all (rounded up to whole optimiser steps)")
    episodes_per_step: int = _f(16, "episodes per generation (TRL's generation_batch_size)")
    num_generations: int = _f(4, "episodes per group (same problem and budget); divides episodes_per_step")
    num_minibatches: int = _f(2, "optimiser steps per generation (TRL's steps_per_generation)")
    lr: float = _f(1e-6, "learning rate (constant)")
    beta: float = _f(0.001, "KL-to-reference coefficient (0: no reference model)")
    clip: float = _f(0.2, "policy ratio clip (TRL's epsilon)")
    loss_type: str = _f("dapo", "TRL loss aggregation: dapo (token mean, as PPO here), grpo, dr_grpo, ...")
    scale_rewards: str = _f("group", "advantage scaling: group (GRPO), batch, none (Dr. GRPO)")
    eval_limit: int = _f(100, "held-out problems per budget in the preset's eval")


# ------------------------------------------------------------------------------------ the data
def episode_prompts(problems: Sequence[Any], budgets: Sequence[str]) -> list[str]:
    """One prompt per (problem, budget): a JSON key the rollout parses back (trap 2)."""
    return [json.dumps({"problem_id": p.id, "budget": b}) for p in problems for b in budgets]


def parse_prompt(prompt: Any) -> dict[str, str]:
    """The reset options of a prompt row: `{"problem_id": ..., "budget": ...}`."""
    if isinstance(prompt, list):  # conversational rows: the key is the last message's content
        prompt = prompt[-1]["content"]
    options = json.loads(prompt)
    return {"problem_id": str(options["problem_id"]), "budget": str(options["budget"])}


# --------------------------------------------------------------------------------- the rollout
class CORLRollout:
    """TRL's `rollout_func` for `CORL-Math-v0`: one token-mode episode per prompt row (see the module
    docstring for the contract and its traps). `generator` fixes the generator (tests); by default an
    `HFGenerator` over the trainer's model."""

    def __init__(self, tokenizer: Any, problems: Sequence[Any], pool: Any = "sim-paper", max_turns: int = 3,
                 max_new_tokens: int = 96, temperature: float = 1.0, top_p: float = 1.0, seed: int = 0,
                 generator: Any = None, prompt_style: str = "full"):
        from corl_gym.experts import Pool, load_pool

        self.tokenizer, self.problems = tokenizer, list(problems)
        self._owns_pool = not isinstance(pool, Pool)
        self.pool = load_pool(pool, seed=seed) if self._owns_pool else pool
        self.max_turns, self.max_new_tokens = max_turns, max_new_tokens
        self.temperature, self.top_p, self.seed = temperature, top_p, seed
        self.generator, self.prompt_style = generator, prompt_style
        self.calls = 0
        self._envs: dict[int, Any] = {}
        self._generators: dict[int, Any] = {}

    def __call__(self, prompts: list, trainer: Any) -> dict[str, list]:
        if self.generator is not None:
            return self.rollout(prompts, self.generator)
        model = trainer.accelerator.unwrap_model(trainer.model)
        was_training = model.training
        model.eval()  # no dropout while sampling; TRL calls us in train mode
        try:
            return self.rollout(prompts, self._generator_for(model))
        finally:
            model.train(was_training)

    def rollout(self, prompts: list, generator: Any) -> dict[str, list]:
        """Play one episode per row (in order, trap 1) and return TRL's fields plus the extra fields."""
        from corl_gym.agents.rollout import play

        pins = [parse_prompt(p) for p in prompts]
        recorder = _PromptLengths(generator)
        seed = self.seed * 1_000_003 + self.calls
        self.calls += 1
        episodes, _ = play(self._vector_env(len(pins)), recorder, seed=seed, max_new_tokens=self.max_new_tokens,
                           temperature=self.temperature, top_p=self.top_p, pins=pins)
        out: dict[str, list] = {k: [] for k in ("prompt_ids", "completion_ids", "logprobs", "env_mask", "env_reward",
                                                "budget", "correct", "cost_usd", "expert_called", "action_errors")}
        for episode, n_prompt in zip(episodes, recorder.lengths):
            mask = episode.action_mask[n_prompt:]
            out["prompt_ids"].append(episode.ids[:n_prompt])
            out["completion_ids"].append(episode.ids[n_prompt:])
            out["env_mask"].append(mask)
            out["logprobs"].append(_spread(episode.gen_logprobs, mask))
            out["env_reward"].append(float(episode.reward))
            out["budget"].append(episode.budget)
            out["correct"].append(bool(episode.correct))
            out["cost_usd"].append(float(episode.cost_usd))
            out["expert_called"].append(float(any(episode.calls.values())))
            out["action_errors"].append(int(episode.action_errors))
        return out

    def _vector_env(self, n: int):
        if n not in self._envs:
            from corl_gym.envs.vector import CORLMathVectorEnv

            self._envs[n] = CORLMathVectorEnv(n, pool=self.pool, problems=self.problems, tokenizer=self.tokenizer,
                                              max_turns=self.max_turns, budget="mixed", prompt_style=self.prompt_style)
        return self._envs[n]

    def _generator_for(self, model: Any):
        if id(model) not in self._generators:  # built once: it caches the stop-string token table
            from corl_gym.agents.llm import HFGenerator

            self._generators[id(model)] = HFGenerator(model, self.tokenizer)
        return self._generators[id(model)]

    def close(self) -> None:
        for envs in self._envs.values():
            envs.close()
        self._envs.clear()
        if self._owns_pool:
            self.pool.close()


class _PromptLengths:
    """A generator wrapper that records each row's prompt length from the first batch it sees (every
    row's reset observation), so the prompt/completion split is exact even for an empty first turn."""

    def __init__(self, generator: Any):
        self.generator, self.lengths = generator, None

    def generate(self, prompts, **kwargs):
        if self.lengths is None:
            self.lengths = [len(p) for p in prompts]
        return self.generator.generate(prompts, **kwargs)


def _spread(turn_logprobs: Sequence[float], mask: Sequence[int]) -> list[float]:
    """Per-completion-id log-probs: the sampled ones on controller ids (in order), 0.0 on env ids (trap 3)."""
    values = iter(turn_logprobs)
    return [float(next(values)) if m else 0.0 for m in mask]


def env_reward(completions: list, env_reward: list[float], budget: list[str] | None = None,
               expert_called: list[float] | None = None, log_metric: Any = None, **_: Any) -> list[float]:
    """The env's episode reward, passed through (trap 5); logs reward and expert-call ratio per budget."""
    if log_metric is not None and budget is not None:
        for mode in sorted(set(budget)):
            rows = [i for i, b in enumerate(budget) if b == mode]
            log_metric(f"env/reward/{mode}", sum(env_reward[i] for i in rows) / len(rows))
            if expert_called is not None:
                log_metric(f"env/expert_call_ratio/{mode}", sum(expert_called[i] for i in rows) / len(rows))
    return [float(r) for r in env_reward]


# ---------------------------------------------------------------------------------- training
def trainer_args(cfg: GRPOConfig, device: str, steps: int):
    """TRL's `GRPOConfig` for our run (CPU-safe defaults, trap 8)."""
    from trl import GRPOConfig as TRLConfig

    if cfg.episodes_per_step % cfg.num_generations or cfg.episodes_per_step % cfg.num_minibatches:
        raise ValueError("episodes_per_step must be a multiple of num_generations and of num_minibatches")
    on_cpu = device == "cpu"
    # transformers 5 renamed gradient_checkpointing (TRL defaults it to True) to activation_checkpointing
    names = {f.name for f in dataclasses.fields(TRLConfig)}
    checkpointing = "activation_checkpointing" if "activation_checkpointing" in names else "gradient_checkpointing"
    return TRLConfig(
        output_dir=cfg.out, per_device_train_batch_size=cfg.episodes_per_step // cfg.num_minibatches,
        steps_per_generation=cfg.num_minibatches, gradient_accumulation_steps=1, num_generations=cfg.num_generations,
        max_steps=steps, learning_rate=cfg.lr, lr_scheduler_type="constant", warmup_steps=0, weight_decay=0.0,
        max_grad_norm=1.0, beta=cfg.beta, epsilon=cfg.clip, loss_type=cfg.loss_type, scale_rewards=cfg.scale_rewards,
        temperature=cfg.temperature, top_p=cfg.top_p, mask_truncated_completions=False, use_cpu=on_cpu,
        bf16=not on_cpu, logging_steps=1, save_strategy="no", report_to="none", seed=cfg.seed, data_seed=cfg.seed,
        disable_tqdm=not cfg.progress, dataloader_num_workers=0, **{checkpointing: False},
    )


def build_trainer(cfg: GRPOConfig, rollout: CORLRollout | None = None):
    """A `GRPOTrainer` over the model folder `cfg.model` with our rollout and reward (and its rollout)."""
    import os

    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    import torch
    from datasets import Dataset
    from trl import GRPOTrainer

    from corl_gym.agents.rollout import check_turn_budget
    from corl_gym.agents.tiny import load_tokenizer
    from corl_gym.splits import select_problems

    device = ("cuda" if torch.cuda.is_available() else "cpu") if cfg.device == "auto" else cfg.device
    tokenizer = load_tokenizer(cfg.model)
    problems = select_problems(cfg.dataset, "train", cfg.test_fraction, cfg.integer_answers)
    budgets = [b.strip() for b in cfg.budgets.split(",") if b.strip()]
    dataset = Dataset.from_dict({"prompt": episode_prompts(problems, budgets)})
    rollout = rollout or CORLRollout(tokenizer, problems, cfg.pool, cfg.max_turns, cfg.max_new_tokens,
                                     cfg.temperature, cfg.top_p, cfg.seed, prompt_style=cfg.prompt_style)
    call_query = _trained_on(cfg).get("call_query", "")
    check_turn_budget(tokenizer, rollout.pool.expert_names(), cfg.max_new_tokens, call_query)
    steps = math.ceil(cfg.episodes / cfg.episodes_per_step) * cfg.num_minibatches
    trainer = GRPOTrainer(model=cfg.model, reward_funcs=[env_reward], args=trainer_args(cfg, device, steps),
                          train_dataset=dataset, processing_class=tokenizer, rollout_func=rollout,
                          callbacks=[_MetricsFile(Path(cfg.out) / "metrics.jsonl", cfg.time_limit_s)])
    return trainer, rollout


def _MetricsFile(path: Path, time_limit_s: float):
    """A callback writing every log line to `metrics.jsonl` and stopping at the time limit."""
    from transformers import TrainerCallback

    class MetricsFile(TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("")
            self.began = time.perf_counter()

        def on_log(self, args, state, control, logs=None, **kwargs):
            with path.open("a") as f:
                f.write(json.dumps({"step": state.global_step, **(logs or {})}) + "\n")

        def on_step_end(self, args, state, control, **kwargs):
            if time_limit_s and time.perf_counter() - self.began > time_limit_s:
                control.should_training_stop = True

    return MetricsFile()


def _trained_on(cfg: GRPOConfig) -> dict[str, Any]:
    return train_settings(Path(cfg.model))


def train(cfg: GRPOConfig, rollout: CORLRollout | None = None) -> Path:
    """Run GRPO; save the model (a transformers folder `corl-gym eval` loads) under `out/actor`."""
    cfg = replace(cfg, prompt_style=cfg.prompt_style or _trained_on(cfg).get("prompt_style", "full"))
    trainer, rollout = build_trainer(cfg, rollout)
    try:
        trainer.train()
    finally:
        rollout.close()
    folder = Path(cfg.out) / "actor"  # as PPO: `corl-gym eval --checkpoint OUT` finds it
    trainer.save_model(str(folder))
    trainer.processing_class.save_pretrained(str(folder))
    settings = {"pool": cfg.pool, "dataset": cfg.dataset, "test_fraction": cfg.test_fraction,
                "integer_answers": cfg.integer_answers, "max_turns": cfg.max_turns,
                "max_new_tokens": cfg.max_new_tokens,
                "prompt_style": cfg.prompt_style, "call_query": _trained_on(cfg).get("call_query", ""),
                "episodes": trainer.state.global_step * (cfg.episodes_per_step // cfg.num_minibatches),
                "planned_episodes": trainer.state.max_steps * (cfg.episodes_per_step // cfg.num_minibatches)}
    (folder / TRAIN_CONFIG).write_text(json.dumps(settings, indent=2))
    return folder


# ---------------------------------------------------------------------------------- the preset
def preset_overrides(name: str) -> dict[str, Any]:
    """The recipe's PPO task, rollout and budget (`agents.recipe.PRESETS`), read from it (not copied), so the
    two stay comparable: the same episodes in all (iterations x num_envs), learning rate, KL coefficient,
    minibatches."""
    ppo = PRESETS[name]["ppo"]
    return dict(out=f"runs/trl-grpo-{name}", device=ppo["device"], integer_answers=ppo["integer_answers"],
                max_turns=ppo["max_turns"], max_new_tokens=ppo["max_new_tokens"], time_limit_s=ppo["time_limit_s"],
                episodes=ppo["iterations"] * ppo["num_envs"], episodes_per_step=ppo["num_envs"], num_generations=4,
                num_minibatches=ppo["num_minibatches"],
                lr=ppo["actor_lr"], beta=ppo["kl_coef"], eval_limit=PRESETS[name]["eval"]["limit"])


def _episodes_done(cfg: GRPOConfig, model_dir: Path) -> tuple[int, int, str]:
    settings = train_settings(model_dir)
    return settings["episodes"], settings["planned_episodes"], "episodes"


def _episodes(cfg: GRPOConfig, model_dir: Path, result: dict[str, Any]) -> dict[str, Any]:
    return {"episodes": train_settings(model_dir)["episodes"]}


# GRPO as the recipe (`agents.recipe`) runs it: the recipe's SFT start, copy check and eval
GRPO_RECIPE = RecipeLearner(name="GRPO", key="grpo", policy="trl-grpo", config=GRPOConfig, defaults=preset_overrides,
                            train=train, progress=_episodes_done, extras=_episodes)


def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    return learner_main(GRPOConfig, argv, prog, train, recipe=partial(run_preset, GRPO_RECIPE))


if __name__ == "__main__":
    sys.exit(main())

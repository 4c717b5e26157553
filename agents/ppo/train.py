"""Token-level PPO for a controller LLM in `CORL-Math-v0` (CoRL's learner), in the CleanRL spirit: one file
that reads top to bottom.

    corl-gym train --learner ppo --model SFT_DIR --out runs/ppo [--num-envs 16 --iterations 100 ...]
    corl-gym train --learner ppo --preset tiny-cpu --out runs/tiny      # SFT then PPO on 2 CPU cores
    torchrun --nproc-per-node 8 -m corl_gym.agents.ppo.train --model DIR  # FSDP2, one shard per process

Each iteration: (1) rollout: one episode per sub-env of a token-mode vector env (budget modes mixed per
episode), the controller's ids appended verbatim; (2) score: log-probs of the actor before the update
(`old`), of the frozen reference, and the critic's values, on every token; (3) rewards: the episode's
score on its last controller token, minus `kl_coef * (logp - ref_logp)` on every controller token; GAE
over controller tokens (gamma = lambda = 1 by default), whitened; (4) update: clipped policy loss with
an optional entropy bonus, and the clipped value loss, each a mean over controller tokens
(`action_mask`, `clamp(min=1)`), for `update_epochs` x `num_minibatches` steps; (5) log, checkpoint.

Under torchrun the actor, critic and reference are sharded with FSDP2 (`fully_shard`); every process
plays its own episodes with a full, unsharded copy of the actor's weights (`agents.ppo.engine`, which
also has the vLLM rollout engine); loss denominators are global token counts, so the update equals one
process's on the union of the batches. Checkpoints: `agents.ppo.checkpoint`.
"""

from __future__ import annotations

import dataclasses
import random
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

from corl_gym.agents.config import TRAIN_CONFIG, learner_main, train_settings
from corl_gym.agents.logprobs import masked_sum_mean, model_logprobs
from corl_gym.agents.ppo import core
from corl_gym.agents.ppo.checkpoint import load_checkpoint, save_checkpoint
from corl_gym.agents.ppo.config import PPOConfig
from corl_gym.agents.ppo.distributed import all_reduce_sum, init_distributed, shard
from corl_gym.agents.ppo.engine import RolloutEngine, engine_kind, rollout_engine
from corl_gym.agents.ppo.logger import MetricLogger
from corl_gym.agents.ppo.models import Critic, critic_forward, frozen_copy
from corl_gym.agents.ppo.preset import ppo_learner
from corl_gym.agents.recipe import run_preset
from corl_gym.agents.rollout import Episode, RolloutTiming, check_turn_budget, collate, play, summarize_episodes

Tensor = torch.Tensor


def train(cfg: PPOConfig) -> Path:
    """PPO as `cfg` says; returns the latest checkpoint's actor folder (what `corl-gym eval` loads)."""
    cfg, run = start_run(cfg)
    models = load_models(cfg, run)
    envs = make_envs(cfg, models.tokenizer, run.trained_on)
    # old, reference and new log-probs are all taken under the distribution the rollout sampled from
    sampling = dict(temperature=cfg.temperature, top_p=cfg.top_p, vocab_limit=len(models.tokenizer))
    logger = MetricLogger(run.out, cfg.tensorboard, enabled=run.rank == 0)
    if run.rank == 0:
        run.out.mkdir(parents=True, exist_ok=True)
        cfg.save(run.out / TRAIN_CONFIG)
    bar = _progress(cfg, models.start_iteration, run.rank)
    began = time.perf_counter()

    for iteration in range(models.start_iteration, cfg.iterations):
        t_step = time.perf_counter()
        # 1. rollout: one episode per sub-env, generated with the actor's current weights
        episodes, timing = rollout(cfg, run, models, envs, iteration)
        batch = collate(episodes, models.tokenizer.pad_token_id, run.device)
        mask = batch["action_mask"][:, 1:]

        # 2. score: old and reference log-probs, values
        t0 = time.perf_counter()
        old_logprobs, ref_logprobs, values = score(cfg, models, batch, mask, sampling)
        t_score = time.perf_counter() - t0

        # 3. rewards with the KL penalty; advantages over controller tokens
        rewards, kl = core.kl_rewards(batch["scores"], old_logprobs, ref_logprobs, mask, cfg.kl_coef)
        advantages, returns = core.gae(rewards, values, mask, cfg.gamma, cfg.lam)
        if cfg.norm_adv:
            advantages = core.masked_whiten(advantages, mask)

        # 4. update critic and actor
        models.actor.train()
        t0 = time.perf_counter()
        stats = ppo_update(cfg, models.actor, models.critic, models.actor_opt, models.critic_opt, batch, old_logprobs,
                           values, advantages, returns, mask, run.world_size,
                           train_actor=iteration >= cfg.critic_warmup, iteration=iteration, sampling=sampling)
        seconds = {"old_log_prob_ref_values": t_score, "update": time.perf_counter() - t0}

        # 5. log and checkpoint
        seconds["step"] = time.perf_counter() - t_step
        per_token = dict(kl=kl, rewards=rewards, values=values, advantages=advantages, returns=returns)
        metrics = iteration_metrics(cfg, run, models, episodes, batch, per_token, stats, timing, seconds)
        logger.log(iteration + 1, metrics)
        _show(bar, metrics)
        out_of_time = cfg.time_limit_s > 0 and time.perf_counter() - began > cfg.time_limit_s
        if (iteration + 1) % cfg.save_every == 0 or iteration + 1 == cfg.iterations or out_of_time:
            save_checkpoint(run.latest, cfg, iteration + 1, *models.state(), run.rank)
        if out_of_time:
            print(f"time limit reached after {iteration + 1} iterations", file=sys.stderr)
            break

    envs.close()
    logger.close()
    if bar is not None:
        bar.close()
    return run.latest / "actor"


# ------------------------------------------------------------------------------------- set-up
@dataclass
class Run:
    """Where this process trains: its device and rank, the output folder, and the start model's settings."""

    device: str
    rank: int
    world_size: int
    out: Path
    latest: Path  # the checkpoint folder
    resuming: bool
    trained_on: dict[str, Any]


@dataclass
class Models:
    """Actor (trained), reference (frozen initial actor), critic (separate value model), their optimisers,
    and what generates the rollouts."""

    tokenizer: Any
    actor: torch.nn.Module
    critic: torch.nn.Module
    ref: torch.nn.Module
    actor_opt: torch.optim.Optimizer
    critic_opt: torch.optim.Optimizer
    engine: RolloutEngine
    start_iteration: int
    n_params: int

    def state(self) -> tuple[Any, ...]:
        """What a checkpoint holds, in `save_checkpoint`'s order."""
        return self.actor, self.critic, self.actor_opt, self.critic_opt, self.tokenizer


def start_run(cfg: PPOConfig) -> tuple[PPOConfig, Run]:
    """The device, the process group under torchrun, the seeds, and the config with the prompt style the
    start model was trained on (unless it names one); settings that cannot run fail here, before any model
    loads."""
    if cfg.temperature <= 0:
        raise ValueError(f"temperature must be > 0 for PPO rollouts (sampling), got {cfg.temperature}")
    trained_on = train_settings(Path(cfg.model))
    cfg = dataclasses.replace(cfg, prompt_style=cfg.prompt_style or trained_on.get("prompt_style", "full"))
    device = ("cuda" if torch.cuda.is_available() else "cpu") if cfg.device == "auto" else cfg.device
    rank, world_size = init_distributed(device)
    if world_size > 1 and device.startswith("cuda"):
        device = f"cuda:{torch.cuda.current_device()}"
    engine_kind(cfg.rollout_engine, device, world_size)
    seed_everything(cfg.seed + rank)
    latest = Path(cfg.out) / "checkpoints" / "latest"
    resuming = cfg.resume and (latest / "state.pt").is_file()
    return cfg, Run(device, rank, world_size, Path(cfg.out), latest, resuming, trained_on)


def load_models(cfg: PPOConfig, run: Run) -> Models:
    """The three models (sharded under torchrun), the optimisers, a resumed run's state, the rollout engine."""
    from transformers import AutoModelForCausalLM

    from corl_gym.agents.tiny import load_tokenizer

    dtype = torch.bfloat16 if cfg.bf16 and run.device.startswith("cuda") else torch.float32
    tokenizer = load_tokenizer(cfg.model)
    ref = frozen_copy(AutoModelForCausalLM.from_pretrained(cfg.model, dtype=dtype)).to(run.device)
    start = str(run.latest / "actor") if run.resuming else cfg.model
    actor = AutoModelForCausalLM.from_pretrained(start, dtype=dtype).to(run.device)
    critic = Critic.from_actor(ref if not run.resuming else actor).to(run.device)
    if run.resuming:
        critic.load_state_dict(torch.load(run.latest / "critic.pt", map_location=run.device))
    full_copy = None
    if run.world_size > 1:
        full_copy = frozen_copy(actor)  # full weights for generation, refreshed from the shards
        actor, critic, ref = shard(actor), shard(critic), shard(ref)
    actor_opt = torch.optim.AdamW(actor.parameters(), lr=cfg.actor_lr, weight_decay=0.0)
    critic_opt = torch.optim.AdamW(critic.parameters(), lr=cfg.critic_lr, weight_decay=0.0)
    start_iteration = load_checkpoint(run.latest, actor, critic, actor_opt, critic_opt) if run.resuming else 0
    engine = rollout_engine(engine_kind(cfg.rollout_engine, run.device, run.world_size), actor, tokenizer,
                            full_copy=full_copy, model_path=start, dtype=dtype, seed=cfg.seed)
    n_params = sum(p.numel() for p in ref.parameters())
    return Models(tokenizer, actor, critic, ref, actor_opt, critic_opt, engine, start_iteration, n_params)


def make_envs(cfg: PPOConfig, tokenizer: Any, trained_on: dict[str, Any]):
    """The training split, budget modes mixed per episode; refuses a turn budget too small for a call."""
    from corl_gym.envs.vector import CORLMathVectorEnv
    from corl_gym.splits import select_problems

    problems = select_problems(cfg.dataset, "train", cfg.test_fraction, cfg.integer_answers)
    envs = CORLMathVectorEnv(cfg.num_envs, pool=cfg.pool, problems=problems, budget=cfg.budget, tokenizer=tokenizer,
                             max_turns=cfg.max_turns, expert_seed=cfg.seed, prompt_style=cfg.prompt_style)
    check_turn_budget(tokenizer, envs.expert_names, cfg.max_new_tokens, trained_on.get("call_query", ""))
    return envs


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


# ----------------------------------------------------------------------------------- each step
def rollout(cfg: PPOConfig, run: Run, models: Models, envs: Any, iteration: int) -> tuple[list[Episode], RolloutTiming]:
    """One episode per sub-env with the actor's current weights; the sampling seed differs per iteration
    and process, and is the same when a resumed run replays an iteration."""
    models.engine.sync()
    models.actor.eval()
    return play(envs, models.engine.generator, seed=cfg.seed * 1_000_003 + iteration * run.world_size + run.rank,
                max_new_tokens=cfg.max_new_tokens, temperature=cfg.temperature, top_p=cfg.top_p)


def score(cfg: PPOConfig, models: Models, batch: dict[str, torch.Tensor], mask: torch.Tensor,
          sampling: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Log-probs of the actor before the update (`old`) and of the reference, and the critic's values, on
    every token, one minibatch of rows at a time."""
    with torch.no_grad():
        old_logprobs = _chunked(lambda b: model_logprobs(models.actor, b, **sampling)[0], batch, cfg.num_minibatches)
        ref_logprobs = _chunked(lambda b: model_logprobs(models.ref, b, **sampling)[0], batch, cfg.num_minibatches)
        values = _chunked(lambda b: critic_forward(models.critic, b), batch, cfg.num_minibatches) * mask
    return old_logprobs, ref_logprobs, values


def iteration_metrics(cfg: PPOConfig, run: Run, models: Models, episodes: Sequence[Episode],
                      batch: dict[str, torch.Tensor], per_token: dict[str, torch.Tensor], stats: dict[str, Any],
                      timing: RolloutTiming, seconds: dict[str, float]) -> dict[str, float]:
    """An iteration's log line, under veRL's names: the episodes, token means of the per-token tensors
    (over controller tokens), wall times, throughput and the update's statistics."""
    mask = batch["action_mask"][:, 1:]
    tokens = float(all_reduce_sum(batch["attention_mask"].sum().float()))  # a collective: every rank
    means = {name: float(masked_sum_mean(per_token[name], mask)) for name in per_token}
    return {
        **summarize_episodes(episodes),
        "actor/kl": means["kl"],
        "critic/score/mean": float(batch["scores"].mean()),
        **{f"critic/{name}/mean": means[name] for name in ("rewards", "values", "advantages", "returns")},
        "response_length/mean": float(mask.sum(1).mean()),
        "timing_s/gen": timing.gen_s, "timing_s/env": timing.env_s,
        "timing_s/old_log_prob_ref_values": seconds["old_log_prob_ref_values"],
        "timing_s/update_actor": stats["timing_update_actor"], "timing_s/update_critic": stats["timing_update_critic"],
        "timing_s/update": seconds["update"],
        "timing_s/step": seconds["step"],
        "perf/throughput": tokens / seconds["step"] / run.world_size,
        "perf/gen_tokens_per_s": timing.gen_tokens / max(timing.gen_s, 1e-9),
        "perf/mfu/actor": 6 * models.n_params * tokens * cfg.update_epochs / max(stats["timing_update_actor"], 1e-9)
        / (cfg.peak_flops * run.world_size),
        **{k: v for k, v in stats.items() if not k.startswith("timing_")},
    }


# ------------------------------------------------------------------------------------ the update
def ppo_update(cfg: PPOConfig, actor: torch.nn.Module, critic: torch.nn.Module, actor_opt: torch.optim.Optimizer,
               critic_opt: torch.optim.Optimizer, batch: dict[str, Tensor], old_logprobs: Tensor, old_values: Tensor,
               advantages: Tensor, returns: Tensor, mask: Tensor, world_size: int, train_actor: bool = True,
               iteration: int = 0, sampling: dict[str, Any] | None = None) -> dict[str, Any]:
    """`update_epochs` passes of `num_minibatches` steps; returns the mean of each statistic. Each pass
    shuffles the rows afresh, from a generator seeded by (seed, iteration): a new order every iteration,
    the same one when a resumed run replays it."""
    sums: dict[str, float] = {}
    timing = {"timing_update_actor": 0.0, "timing_update_critic": 0.0}
    order = torch.Generator().manual_seed(cfg.seed * 1_000_003 + iteration)
    steps = 0
    for _ in range(cfg.update_epochs):
        for rows in torch.randperm(mask.shape[0], generator=order).chunk(cfg.num_minibatches):
            mb = _trim({k: v[rows] for k, v in batch.items()},
                       old_logprobs[rows], old_values[rows], advantages[rows], returns[rows], mask[rows])
            # global token count / world size: the mean over ranks of each rank's loss is the token mean
            denom = all_reduce_sum(mb["mask"].sum()).clamp(min=1) / world_size

            t0 = _synced_time(mask)
            values = critic_forward(critic, mb)
            vf_loss = core.value_loss(values, mb["old_values"], mb["returns"], mb["mask"], cfg.vf_clip, denom)
            critic_opt.zero_grad(set_to_none=True)
            vf_loss.backward()
            critic_grad = _clip(critic, cfg.max_grad_norm)
            critic_opt.step()
            t1 = _synced_time(mask)

            step = {"critic/vf_loss": vf_loss.item(), "critic/grad_norm": critic_grad}
            if train_actor:
                step.update(actor_step(cfg, actor, actor_opt, mb, denom, sampling or {}))
            timing["timing_update_critic"] += t1 - t0
            timing["timing_update_actor"] += _synced_time(mask) - t1
            for key, value in step.items():
                sums[key] = sums.get(key, 0.0) + float(value)
            steps += 1
    return {**{k: v / max(steps, 1) for k, v in sums.items()}, **timing}


def actor_step(cfg: PPOConfig, actor: torch.nn.Module, actor_opt: torch.optim.Optimizer, mb: dict[str, Tensor],
               denom: Tensor | float, sampling: dict[str, Any]) -> dict[str, float]:
    """One optimiser step of the actor on a minibatch: clipped policy loss minus the entropy bonus."""
    logprobs, entropy = model_logprobs(actor, mb, with_entropy=True, entropy_grad=cfg.ent_coef != 0, **sampling)
    pg_loss, pg_stats = core.policy_loss(logprobs, mb["old_logprobs"], mb["advantages"], mb["mask"], cfg.clip, denom,
                                         dual_clip=cfg.dual_clip, max_log_ratio=cfg.max_log_ratio)
    entropy_loss = masked_sum_mean(entropy, mb["mask"], denom)
    loss = pg_loss - cfg.ent_coef * entropy_loss if cfg.ent_coef else pg_loss
    actor_opt.zero_grad(set_to_none=True)
    loss.backward()
    grad_norm = _clip(actor, cfg.max_grad_norm)
    actor_opt.step()
    return {"actor/pg_loss": pg_loss.item(), "actor/entropy": entropy_loss.item(), "actor/grad_norm": grad_norm,
            "actor/pg_clipfrac": pg_stats["clipfrac"].item(), "actor/ppo_kl": pg_stats["approx_kl"].item()}


def _chunked(fn, batch: dict[str, torch.Tensor], chunks: int) -> torch.Tensor:
    """`fn` over row chunks of `batch` (peak memory of one minibatch), concatenated."""
    rows = torch.arange(batch["ids"].shape[0]).chunk(chunks)
    return torch.cat([fn({k: v[r] for k, v in batch.items()}) for r in rows])


def _trim(batch, old_logprobs, old_values, advantages, returns, mask) -> dict[str, torch.Tensor]:
    """A minibatch cut to its longest trajectory (padding costs compute, not correctness)."""
    length = int(batch["attention_mask"].sum(1).max())
    mb = {k: (v[:, :length] if v.dim() == 2 else v) for k, v in batch.items()}
    shifted = dict(old_logprobs=old_logprobs, old_values=old_values, advantages=advantages, returns=returns, mask=mask)
    return {**mb, **{k: v[:, : length - 1] for k, v in shifted.items()}}


def _synced_time(tensor: torch.Tensor) -> float:
    """Wall time after the device's queued work is done (GPU kernels run asynchronously)."""
    if tensor.is_cuda:
        torch.cuda.synchronize(tensor.device)
    return time.perf_counter()


def _clip(model: torch.nn.Module, max_norm: float) -> float:
    norm = torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)
    norm = norm.full_tensor() if hasattr(norm, "full_tensor") else norm
    return float(norm)


def _progress(cfg: PPOConfig, start: int, rank: int):
    if not cfg.progress or rank != 0:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=cfg.iterations, initial=start, desc="ppo", unit="it", dynamic_ncols=True)


def _show(bar: Any, metrics: dict[str, float]) -> None:
    if bar is not None:
        bar.update(1)
        bar.set_postfix(reward=f"{metrics['env/reward']:.2f}", calls=f"{metrics['env/expert_call_ratio']:.2f}")


# ------------------------------------------------------------------------------------------ CLI
def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    return learner_main(PPOConfig, argv, prog, train, recipe=partial(run_preset, ppo_learner(train)))


if __name__ == "__main__":
    sys.exit(main())

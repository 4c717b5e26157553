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
plays its own episodes with a full, unsharded copy of the actor's weights (gathered once per iteration,
as veRL syncs weights into its rollout engine), so generation runs no collectives; loss denominators are
global token counts, so the update equals one process's on the union of the batches.
"""

from __future__ import annotations

import dataclasses
import random
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from corl_gym.agents.evaluate import TRAIN_CONFIG, select_problems, train_settings
from corl_gym.agents.llm import HFGenerator
from corl_gym.agents.ppo import core
from corl_gym.agents.ppo.config import PPOConfig, parse_config
from corl_gym.agents.ppo.logger import MetricLogger
from corl_gym.agents.ppo.models import (
    Critic, actor_forward, all_reduce_sum, critic_forward, frozen_copy, full_state_dict, init_distributed,
    load_optimizer_state, optimizer_state, shard,
)
from corl_gym.agents.ppo.rollout import check_turn_budget, collate, play, summarize_episodes


def train(cfg: PPOConfig) -> Path:
    if cfg.temperature <= 0:
        raise ValueError(f"temperature must be > 0 for PPO rollouts (sampling), got {cfg.temperature}")
    trained_on = train_settings(Path(cfg.model))
    cfg = dataclasses.replace(cfg, prompt_style=cfg.prompt_style or trained_on.get("prompt_style", "full"))
    device = ("cuda" if torch.cuda.is_available() else "cpu") if cfg.device == "auto" else cfg.device
    rank, world_size = init_distributed(device)
    if world_size > 1 and device.startswith("cuda"):
        device = f"cuda:{torch.cuda.current_device()}"
    seed_everything(cfg.seed + rank)
    out = Path(cfg.out)
    latest = out / "checkpoints" / "latest"
    resuming = cfg.resume and (latest / "state.pt").is_file()

    # ---- models: actor (trained), reference (frozen initial actor), critic (separate value model)
    from transformers import AutoModelForCausalLM

    from corl_gym.agents.tiny import load_tokenizer

    dtype = torch.bfloat16 if cfg.bf16 and device.startswith("cuda") else torch.float32
    tokenizer = load_tokenizer(cfg.model)
    ref = frozen_copy(AutoModelForCausalLM.from_pretrained(cfg.model, dtype=dtype)).to(device)
    actor = AutoModelForCausalLM.from_pretrained(str(latest / "actor") if resuming else cfg.model, dtype=dtype).to(device)
    critic = Critic.from_actor(ref if not resuming else actor).to(device)
    if resuming:
        critic.load_state_dict(torch.load(latest / "critic.pt", map_location=device))
    rollout_model = actor
    if world_size > 1:
        rollout_model = frozen_copy(actor)  # full weights for generation, refreshed from the shards
        actor, critic, ref = shard(actor), shard(critic), shard(ref)
    actor_opt = torch.optim.AdamW(actor.parameters(), lr=cfg.actor_lr, weight_decay=0.0)
    critic_opt = torch.optim.AdamW(critic.parameters(), lr=cfg.critic_lr, weight_decay=0.0)
    start_iteration = load_checkpoint(latest, actor, critic, actor_opt, critic_opt) if resuming else 0
    generator = HFGenerator(rollout_model, tokenizer)
    n_params = sum(p.numel() for p in ref.parameters())

    # ---- environment: the training split, budget modes mixed per episode
    from corl_gym.envs.vector import CORLMathVectorEnv

    problems = select_problems(cfg.dataset, "train", cfg.test_fraction, cfg.integer_answers)
    envs = CORLMathVectorEnv(cfg.num_envs, pool=cfg.pool, problems=problems, budget=cfg.budget, tokenizer=tokenizer,
                             max_turns=cfg.max_turns, expert_seed=cfg.seed, prompt_style=cfg.prompt_style)
    check_turn_budget(tokenizer, envs.expert_names, cfg.max_new_tokens, trained_on.get("call_query", ""))
    # old, reference and new log-probs are all taken under the distribution the rollout sampled from
    sampling = dict(temperature=cfg.temperature, top_p=cfg.top_p, vocab_limit=len(tokenizer))
    logger = MetricLogger(out, cfg.tensorboard, enabled=rank == 0)
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        cfg.save(out / TRAIN_CONFIG)
    bar = _progress(cfg, start_iteration, rank)
    began = time.perf_counter()

    for iteration in range(start_iteration, cfg.iterations):
        t_step = time.perf_counter()
        # 1. rollout
        if world_size > 1:
            rollout_model.load_state_dict(full_state_dict(actor))
        actor.eval()
        episodes, timing = play(envs, generator, seed=cfg.seed * 1_000_003 + iteration * world_size + rank,
                                max_new_tokens=cfg.max_new_tokens, temperature=cfg.temperature, top_p=cfg.top_p)
        batch = collate(episodes, tokenizer.pad_token_id, device)
        mask = batch["action_mask"][:, 1:]

        # 2. score: old and reference log-probs, values
        t0 = time.perf_counter()
        with torch.no_grad():
            old_logprobs = _chunked(lambda b: actor_forward(actor, b, **sampling)[0], batch, cfg.num_minibatches)
            ref_logprobs = _chunked(lambda b: actor_forward(ref, b, **sampling)[0], batch, cfg.num_minibatches)
            values = _chunked(lambda b: critic_forward(critic, b), batch, cfg.num_minibatches) * mask
        t_score = time.perf_counter() - t0

        # 3. rewards with the KL penalty; advantages over controller tokens
        rewards, kl = core.kl_rewards(batch["scores"], old_logprobs, ref_logprobs, mask, cfg.kl_coef)
        advantages, returns = core.gae(rewards, values, mask, cfg.gamma, cfg.lam)
        if cfg.norm_adv:
            advantages = core.masked_whiten(advantages, mask)

        # 4. update critic and actor
        actor.train()
        t0 = time.perf_counter()
        stats = ppo_update(cfg, actor, critic, actor_opt, critic_opt, batch, old_logprobs, values, advantages,
                           returns, mask, world_size, train_actor=iteration >= cfg.critic_warmup, iteration=iteration,
                           sampling=sampling)
        t_update = time.perf_counter() - t0

        # 5. log and checkpoint
        t_total = time.perf_counter() - t_step
        tokens = float(all_reduce_sum(batch["attention_mask"].sum().float()))
        metrics = {
            **summarize_episodes(episodes),
            "actor/kl": float(core.masked_sum_mean(kl, mask)),
            "critic/score/mean": float(batch["scores"].mean()),
            "critic/rewards/mean": float(core.masked_sum_mean(rewards, mask)),
            "critic/values/mean": float(core.masked_sum_mean(values, mask)),
            "critic/advantages/mean": float(core.masked_sum_mean(advantages, mask)),
            "critic/returns/mean": float(core.masked_sum_mean(returns, mask)),
            "response_length/mean": float(mask.sum(1).mean()),
            "timing_s/gen": timing.gen_s, "timing_s/env": timing.env_s, "timing_s/old_log_prob_ref_values": t_score,
            "timing_s/update_actor": stats["timing_update_actor"], "timing_s/update_critic": stats["timing_update_critic"],
            "timing_s/update": t_update,
            "timing_s/step": t_total,
            "perf/throughput": tokens / t_total / world_size,
            "perf/gen_tokens_per_s": timing.gen_tokens / max(timing.gen_s, 1e-9),
            "perf/mfu/actor": 6 * n_params * tokens * cfg.update_epochs / max(stats["timing_update_actor"], 1e-9)
            / (cfg.peak_flops * world_size),
            **{k: v for k, v in stats.items() if not k.startswith("timing_")},
        }
        logger.log(iteration + 1, metrics)
        if bar is not None:
            bar.update(1)
            bar.set_postfix(reward=f"{metrics['env/reward']:.2f}", calls=f"{metrics['env/expert_call_ratio']:.2f}")
        out_of_time = cfg.time_limit_s > 0 and time.perf_counter() - began > cfg.time_limit_s
        if (iteration + 1) % cfg.save_every == 0 or iteration + 1 == cfg.iterations or out_of_time:
            save_checkpoint(latest, cfg, iteration + 1, actor, critic, actor_opt, critic_opt, tokenizer, rank)
        if out_of_time:
            print(f"time limit reached after {iteration + 1} iterations", file=sys.stderr)
            break

    envs.close()
    logger.close()
    if bar is not None:
        bar.close()
    return latest / "actor"


def ppo_update(cfg, actor, critic, actor_opt, critic_opt, batch, old_logprobs, old_values, advantages, returns,
               mask, world_size, train_actor=True, iteration: int = 0, sampling: dict | None = None) -> dict[str, Any]:
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


def actor_step(cfg, actor, actor_opt, mb: dict[str, torch.Tensor], denom, sampling: dict) -> dict[str, float]:
    """One optimiser step of the actor on a minibatch: clipped policy loss minus the entropy bonus."""
    logprobs, entropy = actor_forward(actor, mb, with_entropy=True, entropy_grad=cfg.ent_coef != 0, **sampling)
    pg_loss, pg_stats = core.policy_loss(logprobs, mb["old_logprobs"], mb["advantages"], mb["mask"], cfg.clip, denom,
                                         dual_clip=cfg.dual_clip, max_log_ratio=cfg.max_log_ratio)
    entropy_loss = core.masked_sum_mean(entropy, mb["mask"], denom)
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


# ---------------------------------------------------------------------------------- checkpoints
def save_checkpoint(folder: Path, cfg: PPOConfig, iteration: int, actor, critic, actor_opt, critic_opt, tokenizer,
                    rank: int) -> None:
    """Actor (a transformers folder, loadable by `corl-gym eval`), critic, optimisers, iteration, RNG.
    Written to a temporary folder, then swapped in, so an interrupted save leaves the previous one."""
    actor_state, critic_state = full_state_dict(actor), full_state_dict(critic)  # collectives: every rank
    optim_states = optimizer_state(actor, actor_opt), optimizer_state(critic, critic_opt)
    if rank != 0:
        return
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model = actor.module if hasattr(actor, "module") else actor
    model.save_pretrained(tmp / "actor", state_dict=actor_state)
    tokenizer.save_pretrained(tmp / "actor")
    cfg.save(tmp / "actor" / TRAIN_CONFIG)
    torch.save(critic_state, tmp / "critic.pt")
    torch.save({"actor": optim_states[0], "critic": optim_states[1]}, tmp / "optim.pt")
    torch.save({"iteration": iteration, "rng": _rng_state()}, tmp / "state.pt")
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)


def load_checkpoint(folder: Path, actor, critic, actor_opt, critic_opt) -> int:
    optim = torch.load(folder / "optim.pt", weights_only=False)
    load_optimizer_state(actor, actor_opt, optim["actor"])
    load_optimizer_state(critic, critic_opt, optim["critic"])
    state = torch.load(folder / "state.pt", weights_only=False)
    _set_rng_state(state["rng"])
    return int(state["iteration"])


def _rng_state() -> dict[str, Any]:
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}


def _set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _progress(cfg: PPOConfig, start: int, rank: int):
    if not cfg.progress or rank != 0:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=cfg.iterations, initial=start, desc="ppo", unit="it", dynamic_ncols=True)


# ------------------------------------------------------------------------------------------ CLI
def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    from corl_gym.cli_args import UsageError

    argv = list(sys.argv[1:] if argv is None else argv)
    cfg = parse_config(PPOConfig, argv, prog)
    if cfg.preset:
        from corl_gym.agents.ppo.preset import PRESETS, run_preset

        if cfg.preset not in PRESETS:
            raise UsageError(f"unknown preset {cfg.preset!r}; presets: {', '.join(PRESETS)}")
        return run_preset(cfg.preset, argv, prog)
    if not cfg.model:
        raise UsageError("--model is required (or --preset tiny-cpu)")
    path = train(cfg)
    if int(__import__("os").environ.get("RANK", "0")) == 0:
        print(f"saved {path}; evaluate it with: corl-gym eval --checkpoint {cfg.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

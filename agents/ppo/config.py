"""PPO's configuration: the learners' shared fields (`agents.config.RLConfig`) and PPO's own, a help line
each; the command line is built from it (`agents.config.build_parser`)."""

from __future__ import annotations

from dataclasses import dataclass

from corl_gym.agents.config import RLConfig, _f

ROLLOUT_ENGINES = ("hf", "vllm", "auto")


@dataclass
class PPOConfig(RLConfig):
    """Token-level PPO for a controller LLM in CORL-Math-v0 (defaults: Search-R1 / Router-R1 at 7B)."""

    # model and output
    out: str = _f("runs/ppo", "output folder: metrics.jsonl, checkpoints/, tensorboard/")
    bf16: bool = _f(True, "bf16 weights on GPU (ignored on CPU)")
    # environment
    budget: str = _f("mixed", "budget mode of training episodes; `mixed` draws low/medium/high per episode")
    # rollout
    rollout_engine: str = _f("hf", "what generates rollouts: `hf` (the actor, HFGenerator), `vllm` (a colocated vLLM "
                                   "engine the actor's weights are pushed into each iteration; one process) or "
                                   "`auto` (vllm when installed and on a GPU, else hf)", ROLLOUT_ENGINES)
    iterations: int = _f(100, "PPO iterations (rollout + update)")
    num_envs: int = _f(16, "episodes per iteration per process (one vector env of this size)")
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
    save_every: int = _f(10, "checkpoint every N iterations (and at the end)")
    resume: bool = _f(False, "continue from out/checkpoints/latest when it exists")
    peak_flops: float = _f(790e12, "accelerator peak FLOP/s for perf/mfu/actor (default: an H200's dense bf16 peak)")
    tensorboard: bool = _f(True, "also log to TensorBoard when it is installed")

"""Stable-Baselines3 routers on `CORL-Routing-v1` (or `-v0`): train, save, load, benchmark.

    corl-gym train --learner sb3-maskable-ppo --pool sim-paper --timesteps 300000 --out runs/router
    corl-gym bench --pool sim-paper --policies sb3:runs/router/sb3-maskable-ppo.zip,best-fixed,oracle

Routers train in `CORL-Routing-v1` by default (`env_id`), whose actions can also submit any answer bought
so far or the plurality; `env_id="CORL-Routing-v0"` trains in the single-answer view. The env id is saved
with the model (in the zip and its JSON), and `load_policy` hands it back, so the benchmark runs a v1
router in v1 and a v0 router in v0; a model saved before v1 existed has none and is a v0 router.

Learners: `sb3-maskable-ppo` (sb3-contrib's MaskablePPO, which reads the env's `action_masks()`, so it
never calls an expert the budget cannot pay for), `sb3-ppo` and `sb3-dqn` (stable-baselines3; the
masks are advice they do not see: they may call an unaffordable expert, and the hard budget gate then
pays them 0). Training uses the TRAIN part of the dataset's stable split (`corl_gym.splits`), the
same split the benchmark tests on the other part of, with budget modes drawn per episode (`mixed`), so
one router serves every budget it can read from its observation.

`SB3Config` is configured like every learner (`agents.config.RunConfig`: a help line per field), and
`main` is `corl-gym train --learner sb3-...`: a flag per field (`--env-id`, also spelled `--env`).

`train(config)` writes `<out>/<learner>.zip` (the SB3 model) and `<out>/<learner>.json` (the config,
the env id, the observation size and a training summary: episodes, mean reward per budget over the last training
episodes, and a deterministic evaluation per budget on training problems). `load_policy(path)` reads
them back as an object with `act(observation, action_mask) -> int`, the benchmark's routing-policy
interface.

torch and stable-baselines3 are imported inside the functions, never at `import corl_gym`; without
them the error says `pip install 'corl-gym[sb3]'`.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from corl_gym import cli_args
from corl_gym.agents.config import RunConfig, _f, learner_main
from corl_gym.envs.features import FEATURES

LEARNERS = ("sb3-maskable-ppo", "sb3-ppo", "sb3-dqn")
ROUTING_ENV_IDS = ("CORL-Routing-v1", "CORL-Routing-v0")


def _all_if_zero(text: str) -> int | None:
    return cli_args.nonnegative_int(text) or None  # 0: every problem, as bench's --train-limit reads it


def _widths(text: str) -> tuple[int, ...]:
    return tuple(cli_args.positive_int(item) for item in cli_args.comma_list(text))


_COUNT = cli_args.positive_int  # sizes and counts a run needs at least one of


@dataclass
class SB3Config(RunConfig):
    """Train a Stable-Baselines3 router in CORL-Routing-v1 (or -v0) on the train split; save it for
    `corl-gym bench --policies sb3:PATH`."""

    HELP_ORDER: ClassVar[tuple[str, ...]] = ("learner", "env_id", "features", "pool", "dataset", "budget", "timesteps",
                                             "seed", "train_limit", "test_fraction")

    learner: str = _f("sb3-maskable-ppo", "MaskablePPO (reads the env's action masks, so it never calls an expert the "
                                          "budget cannot pay for), PPO or DQN", LEARNERS)
    env_id: str = _f("CORL-Routing-v1", "the routing env to train in: v1 (submit any answer seen, or the plurality) "
                                        "or v0 (submit the latest answer)", ROUTING_ENV_IDS, aliases=("--env",))
    features: str = _f("problem", "problem features in the observation; none: only budgets, costs and answers (where "
                                  "every problem looks alike, features let a router memorise its training problems)",
                       tuple(FEATURES))
    dataset: str | None = _f(None, "training problems: a dataset name or JSONL path (its train split is used); "
                                   "default: the pool's own dataset, else synthetic", parse=str)
    budget: str = _f("mixed", "budget mode to train on: low, medium, high, mixed (drawn per episode) or a dollar "
                              "amount such as 0.005", aliases=("--budgets",))
    timesteps: int = _f(300_000, "total environment steps (an episode is 1 to K + 1 steps)", parse=_COUNT)
    seed: int = _f(0, "seed of the learner, the envs and the pool's simulated experts", aliases=("--seeds",))
    train_limit: int | None = _f(None, "training problems at most; default (or 0): the whole train split",
                                 parse=_all_if_zero)
    n_envs: int = _f(8, "envs stepped in one process (DummyVecEnv): one batched policy forward pass per step; an env "
                        "step is cheaper than a subprocess round trip", parse=_COUNT)
    learning_rate: float = _f(3e-4, "Adam step size")
    gamma: float = _f(1.0, "discount: episodes are a few steps with one final reward, so none (as in CoRL's PPO)")
    gae_lambda: float = _f(0.95, "GAE lambda (PPO)")
    n_steps: int = _f(512, "rollout steps per env between PPO updates", parse=_COUNT)
    batch_size: int = _f(512, "minibatch size (PPO and DQN)", parse=_COUNT)
    ent_coef: float = _f(0.001, "entropy bonus (PPO); small: the gains over the best fixed expert are a few points, "
                                "and more entropy keeps the policy from committing to them")
    net_arch: tuple[int, ...] = _f((128, 128), "hidden layers of the policy and value MLPs: a comma list of widths",
                                   parse=_widths)
    eval_episodes: int = _f(300, "episodes per budget mode in the final deterministic evaluation on training problems",
                            parse=_COUNT)
    out: str = _f("runs/router", "folder for <learner>.zip (the model) and <learner>.json (its config and summary)")
    torch_threads: int = _f(1, "torch CPU threads: one is fastest for these small MLPs (more contend for a few cores)",
                            parse=_COUNT)
    verbose: int = _f(0, "SB3 verbosity (1: training logs)")


def routing_env(env_id: str, features: str = "problem", **kwargs: Any) -> Any:
    """An unwrapped routing env by id and feature name (SB3 calls `action_masks()` on the env itself)."""
    import gymnasium as gym

    _check_env_names(env_id, features)
    return gym.make(env_id, features=FEATURES[features], **kwargs).unwrapped


def _check_env_names(env_id: str, features: str) -> None:
    if env_id not in ROUTING_ENV_IDS:
        raise ValueError(f"unknown routing env {env_id!r}: use one of {', '.join(ROUTING_ENV_IDS)}")
    if features not in FEATURES:
        raise ValueError(f"unknown features {features!r}: use one of {', '.join(FEATURES)}")


def _require_sb3(masked: bool) -> None:
    from corl_gym.extras import require

    require("stable_baselines3", "SB3 routers")
    if masked:
        require("sb3_contrib", "MaskablePPO")


def _train_problems(config: SB3Config, pool: Any) -> list:
    from corl_gym.splits import select_problems

    dataset = config.dataset or pool.dataset or "synthetic"
    return select_problems(dataset, "train", config.test_fraction, limit=config.train_limit, required=True)


def _make_model(config: SB3Config, env: Any) -> Any:
    policy_kwargs = {"net_arch": list(config.net_arch)}
    common = dict(learning_rate=config.learning_rate, gamma=config.gamma, seed=config.seed, verbose=config.verbose,
                  policy_kwargs=policy_kwargs, device="cpu")
    ppo = dict(n_steps=config.n_steps, batch_size=config.batch_size, gae_lambda=config.gae_lambda,
               ent_coef=config.ent_coef, **common)
    if config.learner == "sb3-maskable-ppo":
        from sb3_contrib import MaskablePPO

        return MaskablePPO("MlpPolicy", env, **ppo)
    if config.learner == "sb3-ppo":
        from stable_baselines3 import PPO

        return PPO("MlpPolicy", env, **ppo)
    from stable_baselines3 import DQN

    return DQN("MlpPolicy", env, batch_size=config.batch_size, learning_starts=min(1000, config.timesteps // 10),
               exploration_fraction=0.3, target_update_interval=500, train_freq=4, **common)


def _episode_log(total: int, progress: bool) -> Any:
    """A callback that keeps (budget, reward) of every finished training episode and, with `progress`,
    moves a progress bar over the `total` environment steps (SB3's own bar needs `rich`)."""
    from stable_baselines3.common.callbacks import BaseCallback
    from tqdm import tqdm

    class EpisodeLog(BaseCallback):
        def __init__(self) -> None:
            super().__init__()
            self.episodes: list[tuple[str, float]] = []
            self.bar = tqdm(total=total, desc="train", unit="step", disable=not progress, file=sys.stderr)

        def _on_training_end(self) -> None:
            self.bar.close()

        def _on_step(self) -> bool:
            self.bar.update(self.training_env.num_envs)
            for done, reward, info in zip(self.locals["dones"], self.locals["rewards"], self.locals["infos"]):
                if done:
                    self.episodes.append((info["budget_mode"], float(reward)))
            return True

    return EpisodeLog()


def train(config: SB3Config) -> Path:
    """Train a router as `config` says; returns the path of the saved model zip."""
    if config.learner not in LEARNERS:
        raise ValueError(f"unknown learner {config.learner!r}: use one of {', '.join(LEARNERS)}")
    _check_env_names(config.env_id, config.features)
    _require_sb3(config.learner == "sb3-maskable-ppo")
    import torch
    from stable_baselines3.common.vec_env import DummyVecEnv

    from corl_gym.experts import load_pool

    torch.set_num_threads(config.torch_threads)
    pool = load_pool(config.pool, seed=config.seed)
    try:
        problems = _train_problems(config, pool)
        # one shared pool: DummyVecEnv steps its envs in turn in this process
        make = lambda: routing_env(config.env_id, config.features, pool=pool, problems=problems, budget=config.budget)  # noqa: E731
        env = DummyVecEnv([make] * config.n_envs)
        env.seed(config.seed)
        model = _make_model(config, env)
        model.corl_env_id, model.corl_features = config.env_id, config.features  # saved in the zip with the model
        log = _episode_log(_steps_taken(config), config.progress)
        start = time.perf_counter()
        model.learn(total_timesteps=config.timesteps, callback=log)
        seconds = time.perf_counter() - start
        out = Path(config.out)
        out.mkdir(parents=True, exist_ok=True)
        path = out / f"{config.learner}.zip"
        model.save(path)
        summary = {
            "train_problems": len(problems),
            "episodes": len(log.episodes),
            "train_seconds": round(seconds, 1),
            "mean_reward_last_episodes": _last_means(log.episodes),
            "eval_on_train": evaluate(SB3Policy(model, config.learner, config.env_id, config.features), pool, problems,
                                      list(pool.budgets), config.eval_episodes, config.seed),
        }
    finally:
        pool.close()
    meta = {"learner": config.learner, "env_id": config.env_id, "features": config.features,
            "observation_size": int(env.observation_space.shape[0]),
            "config": asdict(config), "summary": summary}
    path.with_suffix(".json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return path


def _steps_taken(config: SB3Config) -> int:
    """The environment steps `learn` takes: PPO finishes its last rollout (n_steps per env), so it may pass
    `timesteps`; every learner steps all envs at once."""
    chunk = config.n_envs * (1 if config.learner == "sb3-dqn" else config.n_steps)
    return -(-config.timesteps // chunk) * chunk


def _last_means(episodes: list[tuple[str, float]], share: float = 0.2) -> dict[str, float]:
    """Mean training reward per budget over the last `share` of episodes (exploration included)."""
    tail = episodes[-max(1, int(len(episodes) * share)):]
    budgets = sorted({b for b, _ in tail})
    return {b: round(float(np.mean([r for bb, r in tail if bb == b])), 4) for b in budgets}


def evaluate(policy: SB3Policy, pool: Any, problems: list, budgets: list[str], episodes: int, seed: int) -> dict:
    """Deterministic episodes per budget, in the policy's routing env: mean reward, expert-call ratio and
    mean cost."""
    env = routing_env(policy.env_id, policy.features, pool=pool, problems=problems)
    result = {}
    for budget in budgets:
        rewards, called, costs = [], [], []
        for index in range(min(episodes, len(problems))):
            observation, info = env.reset(seed=seed + index, options={"problem_index": index, "budget": budget})
            done, reward = False, 0.0
            while not done:
                observation, reward, terminated, truncated, info = env.step(policy.act(observation, env.action_masks()))
                done = terminated or truncated
            rewards.append(reward)
            called.append(any(info["calls"].values()))
            costs.append(info["cost_usd"])
        result[budget] = {"reward": round(float(np.mean(rewards)), 4), "call_ratio": round(float(np.mean(called)), 4),
                          "cost_usd": float(np.mean(costs))}
    return result


class SB3Policy:
    """A trained SB3 router as a routing-env policy: deterministic actions, masked for MaskablePPO.
    `env_id` and `features` name the routing env it was trained in, where it must act."""

    def __init__(self, model: Any, learner: str, env_id: str = "CORL-Routing-v0", features: str = "problem"):
        self.model = model
        self.learner = learner
        self.env_id, self.features = env_id, features
        self.masked = learner == "sb3-maskable-ppo"
        self.observation_size = int(model.observation_space.shape[0])

    def act(self, observation: np.ndarray, action_mask: np.ndarray) -> int:
        observation = np.asarray(observation, dtype=np.float32)
        if observation.shape != (self.observation_size,):
            raise ValueError(
                f"this {self.learner} router was trained on observations of size {self.observation_size}, got "
                f"{observation.shape}: the env's observation changed since training, so retrain it"
            )
        if self.masked:
            action, _ = self.model.predict(observation, deterministic=True, action_masks=np.asarray(action_mask, bool))
        else:
            action, _ = self.model.predict(observation, deterministic=True)
        return int(action)


def load_policy(path: str | Path, torch_threads: int | None = 1) -> SB3Policy:
    """Load a router saved by `train`: a model zip (or a folder holding one) with its JSON beside it;
    without the JSON the learner is read from the zip's name. `torch_threads` sets torch's CPU threads
    (one suits one small MLP per step; None leaves the process's setting alone)."""
    path = Path(path)
    if path.is_dir():
        zips = sorted(path.glob("*.zip"))
        if len(zips) != 1:
            raise FileNotFoundError(f"{path} holds {len(zips)} model zips; name the one to load")
        path = zips[0]
    if not path.is_file():
        raise FileNotFoundError(f"no SB3 model at {path}")
    meta_path = path.with_suffix(".json")
    meta = json.loads(meta_path.read_text(encoding="utf-8")) if meta_path.is_file() else {}
    learner = meta.get("learner")
    learner = learner or next((name for name in LEARNERS if path.stem.startswith(name)), None)
    if learner not in LEARNERS:
        raise ValueError(f"cannot tell the learner of {path}: name it <learner>.zip or keep its JSON beside it")
    _require_sb3(learner == "sb3-maskable-ppo")
    if torch_threads is not None:
        import torch

        torch.set_num_threads(torch_threads)
    if learner == "sb3-maskable-ppo":
        from sb3_contrib import MaskablePPO as Algorithm
    elif learner == "sb3-ppo":
        from stable_baselines3 import PPO as Algorithm
    else:
        from stable_baselines3 import DQN as Algorithm
    model = Algorithm.load(path, device="cpu")
    env_id = meta.get("env_id") or getattr(model, "corl_env_id", None) or "CORL-Routing-v0"  # older models: v0
    features = meta.get("features") or getattr(model, "corl_features", None) or "problem"
    return SB3Policy(model, learner, env_id, features)


def _bench_line(config: SB3Config, path: Path) -> str:
    return f"benchmark it with: corl-gym bench --pool {config.pool} --policies sb3:{path},best-fixed,oracle"


def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    """`corl-gym train --learner sb3-...`: the learner is the config's `--learner` flag."""
    return learner_main(SB3Config, argv, prog, train, needs_model=False, next_step=_bench_line)


if __name__ == "__main__":
    sys.exit(main())

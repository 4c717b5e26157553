"""Train a router with Stable-Baselines3 directly on CORL-Routing-v0 (the plain SB3 API).

MaskablePPO reads the env's `action_masks()`, so it never calls an expert the budget cannot pay for.
For the full recipe (train split, saved model, benchmark) use
`corl-gym train --learner sb3-maskable-ppo`.

    python examples/sb3_router.py --timesteps 5000
"""

import argparse

import gymnasium as gym
import numpy as np

import corl_gym  # noqa: F401


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--timesteps", type=int, default=5000)
    parser.add_argument("--episodes", type=int, default=50)
    args = parser.parse_args()

    from sb3_contrib import MaskablePPO

    env = gym.make("CORL-Routing-v0", budget="mixed")
    model = MaskablePPO("MlpPolicy", env, n_steps=256, batch_size=256, seed=0, verbose=0)
    model.learn(total_timesteps=args.timesteps)

    for budget in ("low", "medium", "high"):
        test = gym.make("CORL-Routing-v0", budget=budget).unwrapped
        rewards, costs = [], []
        for episode in range(args.episodes):
            observation, _ = test.reset(seed=10_000 + episode)
            done = False
            while not done:
                action, _ = model.predict(observation, action_masks=test.action_masks(), deterministic=True)
                observation, reward, terminated, truncated, info = test.step(int(action))
                done = terminated or truncated
            rewards.append(reward)
            costs.append(info["cost_usd"])
        print(f"budget {budget}: mean reward {np.mean(rewards):.3f}, mean cost ${np.mean(costs):.6f}")


if __name__ == "__main__":
    main()

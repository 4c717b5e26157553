"""Step a batch of CORL-Math-v0 episodes at once: every expert call of a step runs concurrently.

    python examples/vector_env.py --num-envs 8 --steps 40
"""

import argparse

import gymnasium as gym
import numpy as np

import corl_gym  # noqa: F401
from corl_gym.verify import extract_answer


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--num-envs", type=int, default=8)
    parser.add_argument("--steps", type=int, default=40)
    args = parser.parse_args()

    envs = gym.make_vec("CORL-Math-v0", num_envs=args.num_envs, vectorization_mode="vector_entry_point", budget="mixed")
    observations, infos = envs.reset(seed=0)
    # Per env: 0 = ask gpt-4.1-nano next, 1 = answer with its reply next, 2 = the step after an episode
    # ends, which Gymnasium's next-step autoreset spends on the reset (that action is ignored).
    phase = np.zeros(args.num_envs, dtype=int)
    finished, rewards = 0, []
    for _ in range(args.steps):
        actions = []
        for i, observation in enumerate(observations):
            if phase[i] == 1:
                actions.append(f"<answer>\\boxed{{{extract_answer(observation)}}}</answer>")
            else:
                problem = observation.rsplit("Problem:\n", 1)[-1].strip()
                actions.append(f'<call expert="gpt-4.1-nano">{problem}</call>')
        observations, reward, terminated, truncated, infos = envs.step(actions)
        done = terminated | truncated
        rewards += reward[done].tolist()
        finished += int(done.sum())
        phase = np.where(phase == 2, 0, np.where(done, 2, phase + 1))
    envs.close()
    print(f"{finished} episodes finished, mean reward {np.mean(rewards):.3f}")


if __name__ == "__main__":
    main()

"""Plug a custom agent into CORL-Math-v0 with the plain Gymnasium loop.

The agent below is a tiny rule: ask the cheapest expert when the problem looks long or hard, answer
with the expert's boxed value, otherwise answer with a guess. Replace `act` with your LLM.

    python examples/gym_loop.py --episodes 20 --budget low
"""

import argparse

import gymnasium as gym

import corl_gym  # noqa: F401  (registers the envs)
from corl_gym.verify import extract_answer


def act(observation: str, info: dict, turn: int) -> str:
    problem = observation.rsplit("Problem:\n", 1)[-1].split("<response", 1)[0].strip()
    if turn == 0 and len(problem) > 60:
        cheapest = min(info["prices"], key=lambda name: sum(info["prices"][name]))
        return f'<call expert="{cheapest}">{problem}</call>'
    reply = observation.rsplit("<response", 1)[-1] if "<response" in observation else ""
    return f"<answer>\\boxed{{{extract_answer(reply) or 0}}}</answer>"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--budget", default="low")
    args = parser.parse_args()

    env = gym.make("CORL-Math-v0", budget=args.budget)
    total_reward, total_cost = 0.0, 0.0
    for episode in range(args.episodes):
        observation, info = env.reset(seed=episode)
        done, turn = False, 0
        while not done:
            observation, reward, terminated, truncated, info = env.step(act(observation, info, turn))
            done, turn = terminated or truncated, turn + 1
        total_reward += reward
        total_cost += info["cost_usd"]
    print(f"{args.episodes} episodes at budget {args.budget}: mean reward {total_reward / args.episodes:.3f}, "
          f"mean cost ${total_cost / args.episodes:.6f}")


if __name__ == "__main__":
    main()

"""Train a controller on CORL-Math-v0 with TRL's GRPOTrainer: the env plugs in through `rollout_func`.

`CORLRollout` plays one multi-turn, token-mode episode per prompt row and returns TRL's fields
(`prompt_ids`, `completion_ids`, `logprobs`) plus `env_mask` (1 on the controller's own tokens, 0 on
the expert replies the env inserted) and the env's reward, which `env_reward` passes through. A tiny
Qwen2 built from a config and a tokenizer trained here stand in for a real controller, so this runs on a
laptop CPU in under a minute; point `model` at an instruct model folder for real training. The full
recipe (SFT warm start, eval) is `corl-gym train --learner trl-grpo`.

    python examples/trl_grpo.py --steps 2
"""

import argparse
import tempfile

import corl_gym  # noqa: F401


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=2)
    args = parser.parse_args()

    from datasets import Dataset
    from trl import GRPOTrainer

    from corl_gym.agents.tiny import env_corpus, tiny_qwen2, train_tokenizer
    from corl_gym.agents.trl import CORLRollout, GRPOConfig, env_reward, episode_prompts, trainer_args
    from corl_gym.data import load_problems
    from corl_gym.experts import load_pool

    folder = tempfile.mkdtemp(prefix="corl-trl-")
    problems = load_problems("synthetic", limit=64)
    pool = load_pool("sim-paper")
    tokenizer = train_tokenizer(env_corpus(pool, problems), folder)
    tiny_qwen2(len(tokenizer), size="micro").save_pretrained(folder)

    rollout = CORLRollout(tokenizer, problems, pool, max_turns=2, max_new_tokens=16)
    config = GRPOConfig(model=folder, out=folder, device="cpu", episodes_per_step=8, num_generations=4,
                        num_minibatches=2, lr=1e-5, beta=0.0, progress=False)
    trainer = GRPOTrainer(
        model=folder, processing_class=tokenizer, reward_funcs=[env_reward], rollout_func=rollout,
        train_dataset=Dataset.from_dict({"prompt": episode_prompts(problems, ["low", "medium", "high"])}),
        args=trainer_args(config, "cpu", steps=args.steps),
    )
    trainer.train()
    rollout.close()
    rewards = [float(e["rewards/env_reward/mean"]) for e in trainer.state.log_history if "rewards/env_reward/mean" in e]
    print(f"{trainer.state.global_step} GRPO steps; mean env reward per generation: {rewards}")


if __name__ == "__main__":
    main()

"""Token-level PPO for a controller LLM (`corl-gym train --learner ppo`): `train.py` reads top to bottom."""

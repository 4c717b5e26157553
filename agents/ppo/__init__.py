"""Token-level PPO for a controller LLM (`corl-gym train --learner ppo`): `train.py` reads top to bottom;
`config` (its flags), `core` (the maths), `models` (critic, reference), `engine` (what generates the
rollouts), `distributed` (torchrun, FSDP2), `checkpoint`, `logger`, and `preset` (its part of the
training recipe, `agents.recipe`)."""

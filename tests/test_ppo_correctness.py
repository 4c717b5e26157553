"""PPO details that decide whether the learner optimises what it samples: log-probs under the sampling
distribution (temperature, top-p, no padding ids), a clamped log-ratio, dual-clip, a fresh minibatch
order every iteration, and a turn budget that always holds a call."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from corl_gym.agents.llm import HFGenerator  # noqa: E402
from corl_gym.agents.logprobs import LOGPROB_FLOOR, model_logprobs  # noqa: E402
from corl_gym.agents.ppo import core  # noqa: E402
from corl_gym.agents.ppo import train as train_module  # noqa: E402
from corl_gym.agents.ppo.config import PPOConfig  # noqa: E402
from corl_gym.agents.rollout import Episode, collate  # noqa: E402
from corl_gym.agents.tiny import tiny_qwen2  # noqa: E402


@pytest.mark.parametrize("temperature,top_p", [(0.7, 1.0), (1.3, 0.8)])
def test_scored_logprobs_equal_the_samplers_at_its_temperature_and_top_p(tokenizer, temperature, top_p):
    # an embedding padded past the tokenizer (as Qwen's is): the sampler never draws those ids, so the
    # scorer must not give them mass either
    model = tiny_qwen2(len(tokenizer) + 24, "micro", seed=0, initializer_range=0.3).eval()
    prompts = [tokenizer.encode("What is 12 + 5"), tokenizer.encode("Solve for x")]
    gens = HFGenerator(model, tokenizer, stop_strings=()).generate(prompts, max_new_tokens=8, temperature=temperature,
                                                                    top_p=top_p, seed=5)
    episodes = [Episode(p + g.token_ids, [0] * len(p) + [1] * len(g.token_ids)) for p, g in zip(prompts, gens)]
    batch = collate(episodes, tokenizer.pad_token_id)
    with torch.no_grad():
        scored, _ = model_logprobs(model, batch, temperature=temperature, top_p=top_p, vocab_limit=len(tokenizer))
    for row, (prompt, gen) in enumerate(zip(prompts, gens)):
        mine = scored[row, len(prompt) - 1 : len(prompt) - 1 + len(gen.token_ids)]
        assert torch.allclose(mine, torch.tensor(gen.logprobs), atol=1e-4)
    assert torch.all(scored >= LOGPROB_FLOOR)  # ids outside the nucleus stay finite numbers


def test_training_scores_old_reference_and_new_logprobs_at_the_rollout_settings(micro_model_dir, tmp_path, monkeypatch):
    seen = []

    def spy(actor, batch, with_entropy=False, entropy_grad=True, **sampling):
        seen.append(sampling)
        return model_logprobs(actor, batch, with_entropy, entropy_grad, **sampling)

    monkeypatch.setattr(train_module, "model_logprobs", spy)
    cfg = PPOConfig(model=str(micro_model_dir), out=str(tmp_path / "run"), device="cpu", iterations=1, num_envs=2,
                    max_new_tokens=24, max_turns=1, num_minibatches=1, temperature=0.6, top_p=0.9, progress=False,
                    integer_answers=True, save_every=1)
    train_module.train(cfg)
    assert len(seen) >= 3  # old, reference, and the update's new log-probs
    assert all(s.get("temperature") == 0.6 and s.get("top_p") == 0.9 for s in seen)


def test_log_ratio_is_clamped_before_exp():
    old = torch.zeros(1, 3)
    new = torch.tensor([[1000.0, -1000.0, 0.1]], requires_grad=True)  # collapsed and exploded tokens
    advantages = torch.tensor([[0.0, 1.0, 1.0]])
    loss, stats = core.policy_loss(new, old, advantages, torch.ones(1, 3), clip=0.2)  # default clamp: 20
    loss.backward()
    assert math.isfinite(loss.item()) and torch.isfinite(new.grad).all()
    assert math.isfinite(stats["approx_kl"].item())


def test_dual_clip_bounds_the_loss_of_negative_advantage_tokens():
    old, mask = torch.zeros(1, 2), torch.ones(1, 2)
    new = torch.log(torch.tensor([[10.0, 10.0]]))  # ratio 10 on both tokens
    advantages = torch.tensor([[-1.0, 1.0]])
    plain, _ = core.policy_loss(new, old, advantages, mask, clip=0.2)
    dual, _ = core.policy_loss(new, old, advantages, mask, clip=0.2, dual_clip=3.0)
    # negative advantage: max(10, 1.2) = 10 without, min(10, 3) = 3 with; positive: max(-10, -1.2) = -1.2
    assert plain.item() == pytest.approx((10 - 1.2) / 2)
    assert dual.item() == pytest.approx((3 - 1.2) / 2)
    with pytest.raises(ValueError, match="dual_clip"):
        core.policy_loss(new, old, advantages, mask, clip=0.2, dual_clip=0.5)


def test_every_iteration_shuffles_the_minibatches_afresh(micro_model_dir, monkeypatch):
    from transformers import AutoModelForCausalLM

    from corl_gym.agents.ppo.models import Critic

    actor = AutoModelForCausalLM.from_pretrained(micro_model_dir)
    critic = Critic.from_actor(actor)
    n, length = 8, 6
    ids = torch.arange(n)[:, None].repeat(1, length) + 10  # each row is recognisable by its ids
    batch = {"ids": ids, "attention_mask": torch.ones(n, length, dtype=torch.long),
             "action_mask": torch.ones(n, length), "scores": torch.zeros(n)}
    zeros = torch.zeros(n, length - 1)
    cfg = PPOConfig(num_minibatches=4, update_epochs=1, seed=3)
    orders = []

    def spy(model, mb):
        orders[-1].append(tuple(int(r) - 10 for r in mb["ids"][:, 0]))
        return train_module.critic_forward.__wrapped__(model, mb)

    spy.__wrapped__ = train_module.critic_forward
    monkeypatch.setattr(train_module, "critic_forward", spy)
    optimisers = torch.optim.SGD(actor.parameters(), lr=0.0), torch.optim.SGD(critic.parameters(), lr=0.0)
    args = (cfg, actor, critic, *optimisers, batch, zeros, zeros, zeros, zeros, torch.ones(n, length - 1), 1)
    for iteration in (0, 1, 0):
        orders.append([])
        train_module.ppo_update(*args, train_actor=False, iteration=iteration)
    assert sorted(r for mb in orders[0] for r in mb) == list(range(n))  # every row once per pass
    assert orders[0] != orders[1]  # a new order each iteration
    assert orders[0] == orders[2]  # and the same one when a resumed run replays an iteration


def test_a_turn_budget_too_small_for_a_call_is_refused_before_training(micro_model_dir, tokenizer, tmp_path):
    cfg = PPOConfig(model=str(micro_model_dir), out=str(tmp_path / "run"), device="cpu", iterations=1, num_envs=2,
                    max_new_tokens=4, progress=False)
    with pytest.raises(ValueError, match="max-new-tokens"):
        train_module.train(cfg)
    assert not (tmp_path / "run" / "checkpoints").exists()

    from transformers import AutoModelForCausalLM

    from corl_gym.agents.evaluate import evaluate

    model = AutoModelForCausalLM.from_pretrained(micro_model_dir)
    with pytest.raises(ValueError, match="cannot hold a call turn"):
        evaluate(model, tokenizer, limit=1, max_new_tokens=4)

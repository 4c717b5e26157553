"""Token-level PPO maths: GAE against a plain loop, the losses and entropy against hand computation, and
the controller mask: prompt and expert-response tokens get exactly zero policy gradient."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")

from corl_gym.agents import logprobs as lp  # noqa: E402
from corl_gym.agents.ppo import core  # noqa: E402


def plain_gae(rewards, values, mask, gamma, lam):
    """One trajectory at a time, over its controller tokens only, in plain Python."""
    advantages = [[0.0] * len(r) for r in rewards]
    for row in range(len(rewards)):
        steps = [t for t, m in enumerate(mask[row]) if m]
        next_value, next_adv = 0.0, 0.0
        for t in reversed(steps):
            delta = rewards[row][t] + gamma * next_value - values[row][t]
            next_adv = delta + gamma * lam * next_adv
            advantages[row][t] = next_adv
            next_value = values[row][t]
    return advantages


@pytest.mark.parametrize("gamma,lam", [(1.0, 1.0), (0.9, 0.8)])
def test_gae_equals_a_plain_loop_and_skips_env_tokens(gamma, lam):
    g = torch.Generator().manual_seed(0)
    rewards, values = torch.randn(3, 9, generator=g), torch.randn(3, 9, generator=g)
    mask = torch.tensor([[0, 1, 1, 0, 0, 1, 1, 0, 0], [0, 0, 1, 1, 1, 1, 1, 1, 1], [0] * 9], dtype=torch.float32)
    advantages, returns = core.gae(rewards, values, mask, gamma, lam)
    expected = plain_gae(rewards.tolist(), values.tolist(), mask.tolist(), gamma, lam)
    assert torch.allclose(advantages, torch.tensor(expected), atol=1e-6)
    assert torch.allclose(returns, (advantages + values) * mask)
    assert advantages[2].abs().sum() == 0  # no controller token, no advantage


def test_gae_with_gamma_lambda_one_is_the_score_minus_the_value():
    # KL-free rewards: only the last controller token is rewarded, so A_t = score - V_t at every token
    mask = torch.tensor([[0, 1, 1, 0, 1, 0]], dtype=torch.float32)
    values = torch.tensor([[9.0, 0.2, 0.5, 9.0, 0.1, 9.0]])
    rewards, _ = core.kl_rewards(torch.tensor([1.0]), torch.zeros(1, 6), torch.zeros(1, 6), mask, kl_coef=0.1)
    assert rewards.tolist() == [[0, 0, 0, 0, 1, 0]]
    advantages, _ = core.gae(rewards, values, mask)
    assert torch.allclose(advantages, torch.tensor([[0, 0.8, 0.5, 0, 0.9, 0]]))


def test_kl_rewards_by_hand():
    mask = torch.tensor([[0, 1, 1, 0]], dtype=torch.float32)
    logp = torch.tensor([[-1.0, -0.5, -2.0, -3.0]])
    ref = torch.tensor([[-2.0, -1.0, -1.0, -1.0]])
    rewards, kl = core.kl_rewards(torch.tensor([2.0]), logp, ref, mask, kl_coef=0.1)
    assert torch.allclose(kl, torch.tensor([[0, 0.5, -1.0, 0]]))
    assert torch.allclose(rewards, torch.tensor([[0, -0.05, 0.1 + 2.0, 0]]))


def test_losses_equal_a_hand_computed_reference():
    mask = torch.tensor([[0.0, 1.0, 1.0], [1.0, 0.0, 0.0]])
    old = torch.tensor([[0.0, -1.0, -1.0], [-2.0, 5.0, 5.0]])
    new = old + torch.tensor([[7.0, math.log(1.5), math.log(0.9)], [math.log(0.5), 3.0, 3.0]])
    adv = torch.tensor([[9.0, 2.0, -1.0], [-3.0, 9.0, 9.0]])
    loss, stats = core.policy_loss(new, old, adv, mask, clip=0.2)
    # token 1: ratio 1.5, A=2: max(-3, -2.4) = -2.4 (clipped); token 2: ratio 0.9, A=-1: max(0.9, 0.9) = 0.9;
    # token 3: ratio 0.5, A=-3: max(1.5, 2.4) = 2.4 (clipped). Mean over the 3 controller tokens.
    assert loss.item() == pytest.approx((-2.4 + 0.9 + 2.4) / 3, abs=1e-6)
    assert stats["clipfrac"].item() == pytest.approx(2 / 3)

    values = torch.tensor([[5.0, 1.0, 0.0], [2.0, 7.0, 7.0]])
    old_values = torch.tensor([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    returns = torch.tensor([[0.0, 1.5, 1.0], [0.0, 0.0, 0.0]])
    vf = core.value_loss(values, old_values, returns, mask, clip=0.5)
    # token 1: v=1, clipped 0.5, R=1.5: max(0.25, 1.0) = 1.0; token 2: v=0, R=1: 1.0;
    # token 3: v=2, clipped 1.5, R=0: max(4, 2.25) = 4. Half the mean.
    assert vf.item() == pytest.approx(0.5 * (1.0 + 1.0 + 4.0) / 3)

    logits = torch.log(torch.tensor([[[0.5, 0.5], [0.9, 0.1], [0.5, 0.5]]]))
    entropy = lp.token_entropy(logits)
    assert entropy[0, 0].item() == pytest.approx(math.log(2))
    assert entropy[0, 1].item() == pytest.approx(-(0.9 * math.log(0.9) + 0.1 * math.log(0.1)))


def test_masked_means_of_an_empty_mask_are_zero_not_nan():
    zeros = torch.zeros(2, 3)
    loss, _ = core.policy_loss(torch.randn(2, 3), torch.randn(2, 3), torch.randn(2, 3), zeros, 0.2)
    assert loss.item() == 0.0
    assert core.value_loss(torch.randn(2, 3), zeros, zeros, zeros, 0.2).item() == 0.0


def test_prompt_and_expert_tokens_get_exactly_zero_policy_gradient():
    from corl_gym.agents.tiny import tiny_qwen2

    model = tiny_qwen2(64, "micro", seed=0)
    # prompt (5) | controller turn (3) | expert response (4) | controller turn (2) | padding (2)
    action_mask = torch.tensor([[0] * 5 + [1] * 3 + [0] * 4 + [1] * 2 + [0] * 2])
    attention_mask = torch.tensor([[1] * 14 + [0] * 2])
    ids = torch.randint(0, 64, (1, 16), generator=torch.Generator().manual_seed(1))
    logits = model(input_ids=ids, attention_mask=attention_mask).logits
    logits.retain_grad()
    mask = action_mask[:, 1:].float()
    logprobs = lp.token_logprobs(logits, ids)
    entropy = lp.masked_sum_mean(lp.token_entropy(logits), mask)
    old = logprobs.detach() - 0.1
    advantages = torch.randn(1, 15, generator=torch.Generator().manual_seed(2))
    loss, _ = core.policy_loss(logprobs, old, advantages, mask, clip=0.2)
    (loss - 0.01 * entropy).backward()

    grad = logits.grad[0].abs().sum(-1)  # the logits at position t predict token t + 1
    predicts_controller = action_mask[0, 1:].bool()
    assert torch.all(grad[:-1][~predicts_controller] == 0)  # exactly zero, not merely small
    assert grad[-1] == 0  # the last position predicts nothing
    assert torch.all(grad[:-1][predicts_controller] > 0)

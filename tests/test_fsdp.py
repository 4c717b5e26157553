"""FSDP2 (`fully_shard`) under 2 processes (gloo, CPU) updates the actor and critic exactly as one process
does on the union of the two batches: same losses, same gradient norms, same weights after a step."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
if not torch.distributed.is_available() or not torch.distributed.is_gloo_available():
    pytest.skip("torch.distributed with gloo is unavailable", allow_module_level=True)

VOCAB, ROWS = 64, 4


def setup():
    from corl_gym.agents.logprobs import model_logprobs
    from corl_gym.agents.ppo import core
    from corl_gym.agents.ppo.models import Critic, frozen_copy
    from corl_gym.agents.tiny import tiny_qwen2

    actor = tiny_qwen2(VOCAB, "micro", seed=0)
    ref = frozen_copy(actor)
    critic = Critic.from_actor(actor)
    torch.manual_seed(1)
    torch.nn.init.normal_(critic.value_head.weight, std=0.5)  # a zero head would give the body no gradient
    g = torch.Generator().manual_seed(2)
    lengths = [16, 11, 14, 12]
    ids = torch.randint(0, VOCAB, (ROWS, 16), generator=g)
    attention = torch.tensor([[1] * n + [0] * (16 - n) for n in lengths])
    action = torch.tensor([[0] * 4 + [1] * 3 + [0] * 3 + [1] * (n - 10) + [0] * (16 - n) for n in lengths],
                          dtype=torch.float32)
    batch = {"ids": ids * attention, "attention_mask": attention, "action_mask": action, "scores": torch.ones(ROWS)}
    mask = action[:, 1:]
    with torch.no_grad():
        old = model_logprobs(actor, batch)[0] - 0.05 * torch.rand(ROWS, 15, generator=g)
    tensors = dict(old_logprobs=old * mask, old_values=torch.randn(ROWS, 15, generator=g) * mask,
                   advantages=core.masked_whiten(torch.randn(ROWS, 15, generator=g), mask),
                   returns=torch.randn(ROWS, 15, generator=g) * mask, mask=mask)
    return actor, critic, ref, batch, tensors


def one_update(actor, critic, ref, batch, t, world_size):
    from corl_gym.agents.logprobs import model_logprobs
    from corl_gym.agents.ppo.train import ppo_update

    cfg = SimpleNamespace(seed=0, update_epochs=1, num_minibatches=1, vf_clip=0.2, clip=0.2, ent_coef=0.01,
                          max_grad_norm=1e9, dual_clip=0.0, max_log_ratio=20.0)
    with torch.no_grad():
        ref_sum = (model_logprobs(ref, batch)[0] * t["mask"]).sum()
    actor_opt = torch.optim.SGD(actor.parameters(), lr=1.0)
    critic_opt = torch.optim.SGD(critic.parameters(), lr=1.0)
    stats = ppo_update(cfg, actor, critic, actor_opt, critic_opt, batch, t["old_logprobs"], t["old_values"],
                       t["advantages"], t["returns"], t["mask"], world_size)
    return stats, ref_sum


def worker(rank: int, world_size: int, store: str, out: str) -> None:
    torch.set_num_threads(1)
    torch.distributed.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world_size)
    from corl_gym.agents.ppo.distributed import full_state_dict, shard

    actor, critic, ref, batch, t = setup()
    actor, critic, ref = shard(actor), shard(critic), shard(ref)
    rows = slice(rank * ROWS // world_size, (rank + 1) * ROWS // world_size)
    mine = {k: v[rows] for k, v in batch.items()}, {k: v[rows] for k, v in t.items()}
    stats, ref_sum = one_update(actor, critic, ref, *mine, world_size)
    local = torch.tensor([stats["actor/pg_loss"], stats["critic/vf_loss"], ref_sum.item()])
    torch.distributed.all_reduce(local)
    weights = {"actor": full_state_dict(actor), "critic": full_state_dict(critic)}
    if rank == 0:
        torch.save({"stats": stats, "sums": local, "weights": weights}, out)
    torch.distributed.destroy_process_group()


def test_fsdp2_two_processes_match_one_process(tmp_path):
    import torch.multiprocessing as mp

    actor, critic, ref, batch, t = setup()
    before = {k: v.clone() for k, v in actor.state_dict().items()}
    stats, ref_sum = one_update(actor, critic, ref, batch, t, world_size=1)

    out = tmp_path / "fsdp.pt"
    mp.spawn(worker, args=(2, str(tmp_path / "store"), str(out)), nprocs=2, join=True)
    result = torch.load(out, weights_only=False)
    pg_sum, vf_sum, ref_sum2 = result["sums"].tolist()
    # each rank's loss is its token sum over the global token count / world size: their mean is the token mean
    assert pg_sum / 2 == pytest.approx(stats["actor/pg_loss"], abs=1e-5)
    assert vf_sum / 2 == pytest.approx(stats["critic/vf_loss"], abs=1e-5)
    assert ref_sum2 == pytest.approx(ref_sum.item(), rel=1e-5)
    assert result["stats"]["actor/grad_norm"] == pytest.approx(stats["actor/grad_norm"], rel=1e-4)
    assert result["stats"]["critic/grad_norm"] == pytest.approx(stats["critic/grad_norm"], rel=1e-4)
    moved = 0.0
    for name, value in actor.state_dict().items():  # SGD with lr 1: weights after the step = before - grad
        assert torch.allclose(result["weights"]["actor"][name], value, atol=1e-5), name
        moved += (value - before[name]).abs().sum().item()
    for name, value in critic.state_dict().items():
        assert torch.allclose(result["weights"]["critic"][name], value, atol=1e-5), name
    assert moved > 0

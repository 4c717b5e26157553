"""Copy pretraining: the repeat sequences hold exactly the tokens an induction rule predicts, and nothing
but copying predicts them; training on them and mixing them into SFT runs and logs."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from corl_gym.agents.copy_skill import FIRST_ID, LONG, SHORT, copy_loss, pretrain_copy, repeat_batch  # noqa: E402
from corl_gym.agents.tiny import tiny_qwen2  # noqa: E402


def induction(row):
    """The rule the circuit implements: predict the token that followed the latest earlier occurrence of
    the current token (None when it has not occurred)."""
    guesses, last = [None], {}
    for t in range(1, len(row)):
        before = last.get(row[t - 1])
        guesses.append(None if before is None else row[before + 1])
        last[row[t - 1]] = t - 1
    return guesses


@pytest.mark.parametrize("stage", [SHORT, LONG])
def test_targets_are_exactly_the_tokens_induction_predicts(stage):
    stage = dataclasses.replace(stage, batch_size=8)
    ids, targets = repeat_batch(np.random.default_rng(0), stage, vocab_size=500)
    assert ids.shape == targets.shape == (8, stage.length)
    assert int(ids.min()) >= FIRST_ID and int(ids.max()) < 500  # no special tokens
    for row, mask in zip(ids.tolist(), targets.tolist()):
        guesses = induction(row)
        assert mask == [float(g is not None and g == token) for g, token in zip(guesses, row)]
        assert sum(mask) >= stage.min_len - 1  # every sequence holds at least one repeat to copy


def test_repeats_move_so_that_no_fixed_offset_finds_them():
    ids, targets = repeat_batch(np.random.default_rng(1), dataclasses.replace(SHORT, batch_size=64), vocab_size=3000)
    offsets = set()
    for row, mask in zip(ids.tolist(), targets.tolist()):
        t = mask.index(1.0)
        offsets.add(t - 1 - max(p for p in range(t - 1) if row[p] == row[t - 1]))
    assert len(offsets) > 10  # content, not position, tells where the copy comes from


def test_pretraining_logs_its_loss_and_accuracy_and_lowers_the_copy_loss():
    model = tiny_qwen2(300, "micro", seed=0)
    stage = dataclasses.replace(SHORT, steps=40, batch_size=8, length=32, max_len=12)
    logged = []
    losses = pretrain_copy(model, 300, [stage, dataclasses.replace(stage, steps=2, length=48)], lr=3e-3, seed=0,
                           progress=False, log=lambda step, metrics: logged.append({"step": step, **metrics}))
    assert len(losses) == 42 and all(np.isfinite(losses))
    accuracies = [r for r in logged if "copy/accuracy" in r]
    assert [(r["step"], r["copy/length"]) for r in accuracies] == [(40, 32), (42, 48)]
    assert np.mean(losses[-5:]) < np.mean(losses[:5])
    json.dumps(logged)  # JSON-ready


def test_copy_loss_counts_only_the_predictable_tokens():
    model = tiny_qwen2(100, "micro", seed=0)
    ids = torch.randint(FIRST_ID, 100, (2, 10), generator=torch.Generator().manual_seed(0))
    none = copy_loss(model, ids, torch.zeros(2, 10))
    assert none.item() == 0.0  # an empty mask is 0, not NaN
    one = torch.zeros(2, 10)
    one[1, 4] = 1
    with torch.no_grad():
        logp = torch.log_softmax(model(input_ids=ids).logits[1, 3], -1)[ids[1, 4]]
    assert copy_loss(model, ids, one).item() == pytest.approx(-logp.item(), rel=1e-5)

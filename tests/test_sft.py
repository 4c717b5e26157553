"""SFT warm start: scripted routers' token-mode demonstrations and the masked cloning loss."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from corl_gym.agents.sft import SFTConfig, collect_demos, sft_loss, teacher_names, train_sft  # noqa: E402
from corl_gym.agents.tiny import tiny_qwen2  # noqa: E402
from corl_gym.splits import select_problems  # noqa: E402


def test_teacher_lists_expand_experts_and_weights():
    names = teacher_names("always-self=2,always:*", ["a", "b"])
    assert names == ["always-self", "always-self", "always:a", "always:b"]


def test_demos_mask_exactly_the_routers_actions(tokenizer):
    problems = select_problems("synthetic", "train", integer_answers=True, limit=50)
    assert problems and all(p.answer.lstrip("-").isdigit() for p in problems)
    demos = collect_demos(tokenizer, problems, "sim-paper", ["always:gpt-4.1-nano", "always-self"], 6, 3, seed=0)
    for demo in demos:
        assert len(demo.ids) == len(demo.action_mask)
        turns = tokenizer.decode([t for t, m in zip(demo.ids, demo.action_mask) if m])
        context = tokenizer.decode([t for t, m in zip(demo.ids, demo.action_mask) if not m])
        assert turns.endswith("</answer>") and "<response" not in turns and "Problem" not in turns
        if demo.calls.get("gpt-4.1-nano"):
            assert turns.startswith('<call expert="gpt-4.1-nano">') and '<response expert="gpt-4.1-nano">' in context
        else:
            assert turns.startswith("<answer>") and demo.turns == 1


def test_cloning_lowers_the_loss_on_controller_tokens(tokenizer):
    from corl_gym.agents.rollout import collate

    problems = select_problems("synthetic", "train", limit=20)
    demos = collect_demos(tokenizer, problems, "sim-paper", ["always:o3"], 4, 2, seed=1)
    model = tiny_qwen2(len(tokenizer), "micro", seed=0)
    batch = collate(demos, tokenizer.pad_token_id)
    with torch.no_grad():
        before = sft_loss(model, batch).item()
    cfg = SFTConfig(epochs=10, batch_size=4, lr=1e-2, warmup_steps=1, progress=False)
    losses = train_sft(model, tokenizer, demos, cfg)
    assert len(losses) == 10 and losses[-1] < 0.85 * before


def test_a_saved_tiny_controller_reloads_with_the_ids_it_was_trained_with(tmp_path):
    from corl_gym.agents.evaluate import load_controller
    from corl_gym.agents.sft import build_tiny

    problems = select_problems("synthetic", "train", integer_answers=True, limit=40)
    model, tokenizer = build_tiny(tmp_path, "sim-paper", problems, "micro", seed=0, call_query="Solve it.")
    model.save_pretrained(tmp_path)  # a Qwen2 config beside the tokenizer, as in every checkpoint
    _, reloaded = load_controller(tmp_path)
    text = '<response expert="o3">So $\\boxed{-391}$.</response><answer>\\boxed{553}</answer>'
    assert tokenizer.tokenize("553") == ["553"]  # numbers below 1000 are one token each
    assert reloaded(text)["input_ids"] == tokenizer(text)["input_ids"]


def test_teachers_within_budget_only_call_experts_the_episode_can_afford(tokenizer):
    problems = select_problems("synthetic", "train", integer_answers=True, limit=60)
    teachers = teacher_names("always-self,always:*", ["gpt-4.1-nano", "gpt-4.1", "o3"])
    demos = collect_demos(tokenizer, problems, "sim-paper", teachers, 90, 2, seed=0, within_budget=True)
    called = {b: {e for d in demos if d.budget == b for e, n in d.calls.items() if n}
              for b in ("low", "medium", "high")}
    # sim-paper's expected costs: nano $0.00016, gpt-4.1 $0.0044, o3 $0.016; thresholds $0.001 / $0.01 / $0.05
    assert called == {"low": {"gpt-4.1-nano"}, "medium": {"gpt-4.1-nano", "gpt-4.1"},
                      "high": {"gpt-4.1-nano", "gpt-4.1", "o3"}}
    over = [d.cost_usd > {"low": 0.001, "medium": 0.01, "high": 0.05}[d.budget] for d in demos]
    assert sum(over) < 0.2 * len(demos)  # the expected cost fits; a long reply may still run over
    assert any(not d.calls or not any(d.calls.values()) for d in demos if d.budget == "low")  # answering alone stays
    blind = collect_demos(tokenizer, problems, "sim-paper", teachers, 90, 2, seed=0)
    assert any(d.calls.get("o3") for d in blind if d.budget == "low")  # the default mix ignores the budget

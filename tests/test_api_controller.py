"""A prompted API model as the controller, against a real chat-completions server on loopback."""

import json

import gymnasium as gym
import pytest
import yaml

import corl_gym  # noqa: F401
from corl_gym.agents.api_controller import close_open_tag, make_chat_controller
from corl_gym.agents.episodes import run_episode
from corl_gym.data import Problem
from corl_gym.experts import load_pool
from corl_gym.experts.fake_server import ChatServer

PROBLEMS = [Problem("p1", "What is 6 times 7?", "42", level=1), Problem("p2", "What is 2 plus 2?", "4", level=1)]


def scripted(body):
    """Turn 1: call the cheap expert (the stop string stripped, as real APIs do); turn 2: answer 42."""
    messages = body["messages"]
    assert body["stop"] == ["</call>", "</answer>"]
    if len(messages) == 2:
        assert messages[0]["role"] == "system" and "Budget mode" in messages[0]["content"]
        assert messages[1] == {"role": "user", "content": PROBLEMS[0].problem}
        return '<think>let a cheap expert check</think><call expert="gpt-4.1-nano">What is 6 times 7?'
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    assert messages[2]["content"].endswith("</call>")
    assert messages[3]["content"].startswith('<response expert="gpt-4.1-nano">')
    return "<answer>\\boxed{42}"


def write_pool(tmp_path, base_url, charge):
    sim = {"backend": "sim", "price_in": 0.10, "price_out": 0.40, "accuracy": {1: 1.0, 2: 1.0, 3: 1.0, 4: 1.0, 5: 1.0}}
    pool = {
        "name": "api-test",
        "budgets": {"low": 0.001, "medium": 0.01, "high": 0.05},
        "charge_controller": charge,
        "controller": {"name": "nano-controller", "backend": "openai", "model": "gpt-4.1-nano", "price_in": 100.0,
                       "price_out": 400.0, "base_url": base_url, "api_key_env": "CORL_TEST_KEY", "max_retries": 1},
        "experts": [{"name": "gpt-4.1-nano", "model": "gpt-4.1-nano", **sim}],
    }
    path = tmp_path / f"pool-{charge}.yaml"
    path.write_text(yaml.safe_dump(pool))
    return str(path)


@pytest.mark.parametrize("charge", [False, True])
def test_api_model_plays_an_episode_and_is_charged_when_the_pool_says_so(tmp_path, monkeypatch, charge):
    monkeypatch.setenv("CORL_TEST_KEY", "sk-test-not-a-real-key-123456")
    with ChatServer(reply_fn=scripted, max_requests=20, lifetime_s=30) as server:
        pool = load_pool(write_pool(tmp_path, server.base_url, charge))
        env = gym.make("CORL-Math-v0", pool=pool, problems=PROBLEMS[:1], budget="high")
        controller = make_chat_controller(pool, "nano-controller")
        row = run_episode(env.unwrapped, controller, 0, {})
        assert len(server.requests) == 2
    assert row["correct"] and row["calls"] == {"gpt-4.1-nano": 1} and row["turns"] == 2
    assert controller.usage["cost_usd"] > 0 and controller.usage["failed_requests"] == 0
    expert_cost = row["cost_usd"] - row["controller_cost_usd"]
    assert expert_cost > 0
    if charge:
        assert row["controller_cost_usd"] == pytest.approx(controller.usage["cost_usd"])
        assert row["reward"] == (1.0 if row["cost_usd"] <= 0.05 else 0.0)
    else:
        assert row["controller_cost_usd"] == 0.0 and row["reward"] == 1.0
    assert "sk-test" not in json.dumps(row) and "sk-test" not in repr(controller.client)


def test_failed_requests_become_invalid_turns_not_crashes(tmp_path, monkeypatch):
    monkeypatch.setenv("CORL_TEST_KEY", "sk-test-not-a-real-key-123456")
    failing = ChatServer(reply_fn=lambda body: "[[unused]]", fault_rate=1.0, fault_mix=("500",), max_requests=50,
                         lifetime_s=30)
    with failing as server:
        pool = load_pool(write_pool(tmp_path, server.base_url, True))
        env = gym.make("CORL-Math-v0", pool=pool, problems=PROBLEMS, budget="low", max_turns=2).unwrapped
        controller = make_chat_controller(pool, "nano-controller")
        row = run_episode(env, controller, 0, {"problem_index": 1})
    assert row["action_errors"] == 2 and row["reward"] == 0.0 and controller.usage["failed_requests"] == 2


def test_entry_errors_say_what_to_use():
    pool = load_pool("sim-paper")
    with pytest.raises(ValueError, match="needs an `openai`-backend entry"):
        make_chat_controller(pool, "o3")
    with pytest.raises(ValueError, match="has no entry 'gpt-5'"):
        make_chat_controller(pool, "gpt-5")


@pytest.mark.parametrize(
    "text, closed",
    [
        ('<call expert="o3">q', '<call expert="o3">q</call>'),
        ("<think>x</think><answer>\\boxed{1}", "<think>x</think><answer>\\boxed{1}</answer>"),
        ("<answer>1</answer>", "<answer>1</answer>"),
        ("no tag", "no tag"),
    ],
)
def test_close_open_tag(text, closed):
    assert close_open_tag(text) == closed


def test_api_controller_is_a_bench_policy(tmp_path, monkeypatch):
    from corl_gym.benchmarks.bench import BenchConfig, run_bench

    monkeypatch.setenv("CORL_TEST_KEY", "sk-test-not-a-real-key-123456")
    dataset = tmp_path / "tiny.jsonl"
    rows = ({"id": f"q{i}", "problem": f"What is {i} + 40?", "answer": "42"} for i in range(8))
    dataset.write_text("".join(json.dumps(row) + "\n" for row in rows))
    with ChatServer(reply_fn=lambda body: "<answer>\\boxed{42}", max_requests=100, lifetime_s=30) as server:
        config = BenchConfig(
            policies=["api:nano-controller", "always-self"], pools=[write_pool(tmp_path, server.base_url, True)],
            datasets=[str(dataset)], test_fraction=1.0, limit=None, budgets=["low", "high"], progress=False,
        )
        result = run_bench(config)
    api_rows = [r for r in result.rows if r["policy"] == "api:nano-controller"]
    assert len(api_rows) == 16 and all(r["correct"] and r["controller_cost_usd"] > 0 for r in api_rows)
    assert "| api:nano-controller | high | 8 |" in result.markdown


def test_the_api_controllers_own_requests_are_booked_and_capped(tmp_path, monkeypatch):
    from corl_gym.experts import Ledger

    monkeypatch.setenv("CORL_TEST_KEY", "sk-test-not-a-real-key-123456")
    with ChatServer(reply_fn=scripted, max_requests=20, lifetime_s=30) as server:
        # a request may bill its prompt and up to 4,096 completion tokens at $400/1M: about $1.65 at worst
        ledger = Ledger(max_spend_usd=10.0)
        pool = load_pool(write_pool(tmp_path, server.base_url, False), ledger=ledger)
        env = gym.make("CORL-Math-v0", pool=pool, problems=PROBLEMS[:1], budget="high")
        controller = make_chat_controller(pool, "nano-controller")
        run_episode(env.unwrapped, controller, 0, {})
        book = ledger.to_dict()["experts"]["api-test/nano-controller"]
        assert book["calls"] == len(server.requests) == 2
        assert book["spend_usd"] == pytest.approx(controller.usage["cost_usd"])
        capped = Ledger(max_spend_usd=1.0)  # less than one request's worst case: none is sent
        pool = load_pool(write_pool(tmp_path, server.base_url, False), ledger=capped)
        env = gym.make("CORL-Math-v0", pool=pool, problems=PROBLEMS[:1], budget="high", max_turns=1)
        row = run_episode(env.unwrapped, make_chat_controller(pool, "nano-controller"), 0, {})
        assert len(server.requests) == 2 and capped.stopped and row["action_errors"] == 1

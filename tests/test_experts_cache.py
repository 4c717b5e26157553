"""The SQLite expert cache: keys, the four modes, hits charged to the episode but not to the run, several
processes writing one file at once, and the per-entry and run-level configuration."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from corl_gym.data import Problem
from corl_gym.envs.math_env import CORLMathEnv
from corl_gym.experts import CacheConfig, ExpertSpec, Ledger, load_pool
from corl_gym.experts.cache import ExpertCache, cache_key
from corl_gym.experts.fake_server import ChatServer
from corl_gym.experts.openai_backend import OpenAIExpert

PROBLEM = Problem(id="synthetic-0", problem="What is 1+1?", answer="2", level=1)


@pytest.fixture()
def server():
    with ChatServer(max_requests=200, lifetime_s=60) as running:
        yield running


def _pool_file(folder: Path, server: ChatServer, cache: str = "") -> str:
    entry = ("{name: NAME, backend: openai, model: m-NAME, price_in: 1, price_out: 4, base_url: '" + server.base_url +
             "', api_key_env: null, timeout: 30, max_retries: 0" + cache + "}")
    path = folder / "pool.yaml"
    path.write_text("name: lb\ndataset: synthetic\nbudgets: {low: 0.001, medium: 0.01, high: 1}\n"
                    "controller: {name: self, backend: sim, model: s, price_in: 0, price_out: 0, accuracy: {1: 0.5}}\n"
                    f"experts: [{entry.replace('NAME', 'a')}, {entry.replace('NAME', 'b')}]\n")
    return str(path)


def test_key_covers_expert_model_messages_params_and_seed():
    def request(**change):
        spec = {"name": "e", "backend": "openai", "model": "m", "options": {"api_key_env": None, "temperature": 0.0}}
        spec["options"].update(change.pop("options", {}))
        spec.update(change)
        expert = OpenAIExpert(ExpertSpec(**spec))
        return cache_key(expert.name, expert.cache_request("q", PROBLEM))

    base = request()
    assert base == request() and len(base) == 64
    variants = [request(name="other"), request(model="m2"), request(options={"temperature": 0.7}),
                request(options={"seed": 3}), request(options={"max_tokens": 7}),
                request(options={"system_prompt": "Be brief."})]
    assert len({base, *variants}) == 1 + len(variants)
    expert = OpenAIExpert(ExpertSpec(name="e", backend="openai", model="m", options={"api_key_env": None}))
    assert cache_key("e", expert.cache_request("q1", PROBLEM)) != cache_key("e", expert.cache_request("q2", PROBLEM))


def test_read_write_hit_is_marked_charged_to_the_episode_and_free_to_the_run(server, tmp_path):
    ledger = Ledger()
    pool = load_pool(_pool_file(tmp_path, server, ", cache: {path: c.sqlite, mode: read-write}"), ledger=ledger)
    first = pool.experts["a"].call("What is 1+1?", PROBLEM)
    second = pool.experts["a"].call("What is 1+1?", PROBLEM)
    assert first.ok and not first.cached and second.cached and len(server.requests) == 1
    assert (second.text, second.cost_usd, second.prompt_tokens) == (first.text, first.cost_usd, first.prompt_tokens)
    account = ledger.to_dict()["experts"]["lb/a"]
    assert account["spend_usd"] == pytest.approx(first.cost_usd) and account["cached_hits"] == 1
    assert account["cached_saved_usd"] == pytest.approx(first.cost_usd) and account["calls"] == 2
    db = tmp_path / "c.sqlite"  # relative to the pool file; a real file in WAL mode
    assert db.is_file() and sqlite3.connect(db).execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_warm_cache_leaves_rewards_and_episode_costs_unchanged(server, tmp_path):
    path = _pool_file(tmp_path, server, ", cache: {path: c.sqlite, mode: read-write}")
    outcomes, ledgers = [], []
    for _ in range(2):
        ledger = Ledger()
        env = CORLMathEnv(pool=load_pool(path, ledger=ledger), problems=[PROBLEM], budget="high")
        env.reset(seed=0)
        _, _, _, _, info = env.step('<call expert="a">What is 1+1?</call>')
        _, reward, terminated, _, final = env.step("<answer>\\boxed{2}</answer>")
        outcomes.append((info["step_cost_usd"], final["cost_usd"], reward, env.last_reply is None))
        ledgers.append(ledger.to_dict())
        env.close()
    assert outcomes[0] == outcomes[1] and outcomes[0][1] > 0 and outcomes[0][2] == 1.0
    assert ledgers[0]["spend_usd"] > 0 and ledgers[1]["spend_usd"] == 0 and ledgers[1]["cached_hits"] == 1
    assert len(server.requests) == 1


def test_replay_only_serves_hits_and_refuses_misses_without_a_call(server, tmp_path):
    warm = load_pool(_pool_file(tmp_path, server, ", cache: {path: c.sqlite, mode: read-write}"))
    assert warm.experts["a"].call("known", PROBLEM).ok
    ledger = Ledger()
    cold = load_pool(_pool_file(tmp_path, server, ", cache: {path: c.sqlite, mode: replay-only}"), ledger=ledger)
    hit, miss = cold.call_many([("a", "known", PROBLEM), ("a", "unknown", PROBLEM)])
    assert hit.cached and hit.ok
    key = cache_key("a", cold.experts["a"].cache_request("unknown", PROBLEM))
    assert miss.error_kind == "cache_miss" and key in miss.error and "replay-only" in miss.error
    assert len(server.requests) == 1 and ledger.to_dict()["failures"] == {"cache_miss": 1}


def test_record_mode_always_calls_and_overwrites(tmp_path):
    answers = iter(["first \\boxed{1}", "second \\boxed{2}", "third \\boxed{3}"])
    with ChatServer(reply_fn=lambda body: next(answers), max_requests=10, lifetime_s=30) as server:
        path = _pool_file(tmp_path, server, ", cache: {path: c.sqlite, mode: record}")
        pool = load_pool(path)
        assert pool.experts["a"].call("q", PROBLEM).text.startswith("first")
        assert pool.experts["a"].call("q", PROBLEM).text.startswith("second")
        reader = load_pool(path, cache=CacheConfig(None, "read-write"))  # the run's mode over the entry's
        hit = reader.experts["a"].call("q", PROBLEM)
        assert hit.cached and hit.text.startswith("second") and len(server.requests) == 2


def test_off_and_failures_store_nothing(server, tmp_path):
    path = _pool_file(tmp_path, server, ", cache: {path: c.sqlite, mode: read-write}")
    pool = load_pool(path, cache=CacheConfig(None, "off"))
    assert pool.experts["a"].call("q", PROBLEM).ok and not pool.experts["a"].call("q", PROBLEM).cached
    live = load_pool(path)
    assert not live.experts["a"].call("q [[fault:500]]", PROBLEM).ok
    flaky = "q [[fault:500x1]]"
    assert not live.experts["a"].call(flaky, PROBLEM).ok
    second = live.experts["a"].call(flaky, PROBLEM)  # the failure was not kept: a live call again
    assert second.ok and not second.cached and live.experts["a"].call(flaky, PROBLEM).cached
    assert len(ExpertCache(tmp_path / "c.sqlite")) == 1


def test_run_override_points_every_expert_at_one_file(server, tmp_path):
    shared = tmp_path / "run-cache.sqlite"
    pool = load_pool(_pool_file(tmp_path, server), cache=CacheConfig(str(shared), "read-write"))
    pool.call_many([("a", "q", PROBLEM), ("b", "q", PROBLEM)])
    assert len(ExpertCache(shared)) == 2  # keyed by expert: the same query to two experts is two rows


def test_simulated_experts_are_never_cached(tmp_path):
    pool = load_pool("sim-paper", cache=CacheConfig(str(tmp_path / "c.sqlite"), "replay-only"))
    reply = pool.experts["o3"].call("q", PROBLEM)
    assert reply.ok and not reply.cached and len(ExpertCache(tmp_path / "c.sqlite")) == 0


def test_bad_cache_options_fail_at_load(tmp_path, server):
    with pytest.raises(ValueError, match="cache"):
        load_pool(_pool_file(tmp_path, server, ", cache: {path: c.sqlite, mode: sometimes}"))
    with pytest.raises(ValueError, match="needs a cache file path"):
        load_pool(_pool_file(tmp_path, server, ", cache: {mode: read-write}"))


WRITER = """
import sys
from corl_gym.experts import ExpertReply
from corl_gym.experts.cache import ExpertCache, cache_key
path, worker, n, shared = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
cache = ExpertCache(path, timeout_s=60)
for i in range(n):
    reply = ExpertReply(text=f"w{worker}-{i}", prompt_tokens=i, completion_tokens=worker, cost_usd=0.001)
    cache.put(cache_key("e", {"q": f"{worker}-{i}"}), "e", {"model": "m"}, reply)
    if i < shared:  # every worker writes the same keys too: last writer wins, never a corrupt row
        cache.put(cache_key("e", {"q": f"shared-{i}"}), "e", {"model": "m"}, reply)
print(sum(cache.get(cache_key("e", {"q": f"{worker}-{i}"})) is not None for i in range(n)))
"""


def test_several_processes_write_one_file_at_once(tmp_path):
    path = str(tmp_path / "multi.sqlite")
    ExpertCache(path)
    workers, n, shared = 4, 150, 20
    processes = [subprocess.Popen([sys.executable, "-c", WRITER, path, str(w), str(n), str(shared)],
                                  stdout=subprocess.PIPE, text=True) for w in range(workers)]
    found = [int(p.communicate(timeout=120)[0]) for p in processes]  # communicate reaps each process
    assert [p.returncode for p in processes] == [0] * workers and found == [n] * workers
    cache = ExpertCache(path)
    assert len(cache) == workers * n + shared
    assert cache.get(cache_key("e", {"q": "shared-3"})).text.endswith("-3")
    assert sqlite3.connect(path).execute("PRAGMA integrity_check").fetchone()[0] == "ok"

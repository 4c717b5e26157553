"""Bad input to the expert layer: replies that are not clean text, damaged cache files, bad replay rows and
hostile pool files. Each gets a clear error naming the file, or a documented penalty (a failed call is
an `ExpertReply` with `error` set, billed and booked), never a crash, a hang or a lost call."""

from __future__ import annotations

import json
import logging
import math
import sqlite3
from pathlib import Path

import pytest

from corl_gym.data import Problem
from corl_gym.envs.math_env import CORLMathEnv
from corl_gym.experts import ExpertReply, ExpertSpec, Ledger, load_pool
from corl_gym.experts.base import Expert
from corl_gym.experts.cache import ExpertCache
from corl_gym.experts.fake_server import ChatServer
from corl_gym.experts.managed import ManagedExpert
from corl_gym.experts.pool import Pool
from corl_gym.experts.resilience import RateLimiter

PROBLEM = Problem(id="t-0", problem="What is 1+1?", answer="2", level=1)
SECRET = "sk-robust-0123456789abcdefSECRET"
HEAD = ("name: lb\ndataset: synthetic\nbudgets: {low: 0.001, medium: 0.01, high: 1}\n"
        "controller: {name: self, backend: sim, model: s, price_in: 0, price_out: 0, accuracy: {1: 0.5}}\n")
SIM = "{name: a, backend: sim, model: m, price_in: 0, price_out: 0, accuracy: {1: 0.5}%s}"


def _odd_reply(body):
    """The fake server's reply: a lone surrogate, a list or an object when the message asks for one."""
    content = body["messages"][-1]["content"]
    if "surrogate" in content:
        return "It is \ud800 \\boxed{2}."
    if "list" in content:
        return [{"type": "text", "text": "It is \\boxed{2}."}]
    if "object" in content:
        return {"text": "It is \\boxed{2}."}
    if "number" in content:
        return 42
    return "It is \\boxed{2}."


@pytest.fixture()
def odd_server():
    with ChatServer(reply_fn=_odd_reply, max_requests=100, lifetime_s=60) as running:
        yield running


def _write(folder: Path, text: str, name: str = "pool.yaml") -> str:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def _openai_pool(folder: Path, server: ChatServer, extra: str = ", cache: {path: c.sqlite}") -> str:
    entry = ("{name: a, backend: openai, model: m, price_in: 1, price_out: 4, base_url: '" + server.base_url +
             "', api_key_env: ROBUST_KEY, timeout: 30, max_retries: 0" + extra + "}")
    return _write(folder, HEAD + f"experts: [{entry}]\n")


# ------------------------------------------------------------------ 1. replies that are not clean text
def test_odd_content_is_stored_or_a_billed_bad_response_and_every_call_is_booked(odd_server, tmp_path, monkeypatch):
    monkeypatch.setenv("ROBUST_KEY", SECRET)
    ledger = Ledger()
    pool = load_pool(_openai_pool(tmp_path, odd_server), ledger=ledger)
    expert = pool.experts["a"]
    surrogate = expert.call("surrogate", PROBLEM)
    assert surrogate.ok and surrogate.text == "It is \ufffd \\boxed{2}."  # replaced, so it can be stored
    assert expert.call("surrogate", PROBLEM).cached  # ... and it was stored
    replies = [expert.call(query, PROBLEM) for query in ("list", "object", "number")]
    for reply in replies:
        assert not reply.ok and reply.error_kind == "bad_response" and "not text" in reply.error
        assert reply.cost_usd > 0 and reply.text == ""  # the provider billed it: so does the reply
    book = ledger.to_dict()
    assert book["calls"] == 5 and book["requests"] == len(odd_server.requests) == 4
    assert book["failures"] == {"bad_response": 3}
    assert book["spend_usd"] == pytest.approx(surrogate.cost_usd + sum(r.cost_usd for r in replies))
    pool.close()


def test_one_bad_reply_in_a_batch_spoils_no_other(odd_server, tmp_path, monkeypatch):
    monkeypatch.setenv("ROBUST_KEY", SECRET)
    for extra in (", cache: {path: c.sqlite}", ""):  # with and without a cache
        pool = load_pool(_openai_pool(tmp_path, odd_server, extra), ledger=Ledger())
        good, bad, other = pool.call_many([("a", "one", PROBLEM), ("a", "list", PROBLEM), ("a", "two", PROBLEM)])
        assert good.ok and other.ok and good.text == other.text == "It is \\boxed{2}."
        assert bad.error_kind == "bad_response"
        pool.close()


def test_a_bad_reply_is_charged_to_the_episode(odd_server, tmp_path, monkeypatch):
    monkeypatch.setenv("ROBUST_KEY", SECRET)
    env = CORLMathEnv(pool=load_pool(_openai_pool(tmp_path, odd_server), ledger=Ledger()), problems=[PROBLEM],
                      budget="high")
    env.reset(seed=0)
    _, _, terminated, _, info = env.step('<call expert="a">list</call>')
    assert not terminated and info["expert_error"] and "not text" in info["expert_error"]
    assert info["step_cost_usd"] > 0 and info["cost_usd"] == info["step_cost_usd"]
    env.close()


def test_a_cache_that_cannot_store_keeps_the_reply_and_books_the_call(odd_server, tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("ROBUST_KEY", SECRET)
    ledger = Ledger()
    pool = load_pool(_openai_pool(tmp_path, odd_server), ledger=ledger)
    expert = pool.experts["a"]

    def full_disk(*args, **kwargs):
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(expert.cache, "put", full_disk)
    with caplog.at_level(logging.WARNING):
        reply = expert.call("q", PROBLEM)
        batch = pool.call_many([("a", "q1", PROBLEM), ("a", "q2", PROBLEM)])
    assert reply.ok and reply.cost_usd > 0 and all(r.ok for r in batch)
    book = ledger.to_dict()
    assert book["calls"] == 3 and book["spend_usd"] == pytest.approx(reply.cost_usd + sum(r.cost_usd for r in batch))
    assert "disk is full" in caplog.text and str(expert.cache.path) in caplog.text and SECRET not in caplog.text
    pool.close()


class _ListExpert(Expert):
    """A backend (a third party's, say) that hands back a list where text belongs."""

    def call(self, query, problem):
        return ExpertReply(text=["It is", "\\boxed{2}"], prompt_tokens=3, completion_tokens=4, cost_usd=0.25)


def test_a_backend_replying_non_text_gives_a_bad_response_with_its_cost():
    spec = ExpertSpec(name="odd", backend="sim", model="m")
    for expert in (_ListExpert(spec), ManagedExpert(_ListExpert(spec), ledger=Ledger())):
        pool = Pool("p", controller=expert, experts={"odd": expert}, budgets={"low": 1.0, "medium": 2.0, "high": 3.0})
        (reply,) = pool.call_many([("odd", "q", PROBLEM)])
        assert reply.text == "" and reply.error_kind == "bad_response" and reply.cost_usd == 0.25
        pool.close()


# ------------------------------------------------------------------------------- 2. damaged caches
@pytest.mark.parametrize("column, value", [("cost_usd", "abc"), ("prompt_tokens", "x"), ("completion_tokens", -5),
                                           ("cost_usd", math.inf), ("cost_usd", -0.5), ("text", b"\x00\xff")])
def test_a_cache_row_of_the_wrong_types_is_a_miss_that_heals(odd_server, tmp_path, monkeypatch, caplog, column, value):
    monkeypatch.setenv("ROBUST_KEY", SECRET)
    pool = load_pool(_openai_pool(tmp_path, odd_server))
    assert pool.experts["a"].call("q", PROBLEM).ok
    db = sqlite3.connect(tmp_path / "c.sqlite")
    db.execute(f"UPDATE replies SET {column} = ?", (value,))
    db.commit()
    with caplog.at_level(logging.WARNING):
        again = pool.experts["a"].call("q", PROBLEM)
    assert again.ok and not again.cached and len(odd_server.requests) == 2  # a miss: called live again
    assert "not a valid reply" in caplog.text and column in caplog.text and str(tmp_path / "c.sqlite") in caplog.text
    healed = pool.experts["a"].call("q", PROBLEM)
    assert healed.cached and isinstance(healed.cost_usd, float) and healed.cost_usd == again.cost_usd
    env = CORLMathEnv(pool=pool, problems=[PROBLEM], budget="high")
    env.reset(seed=0)
    assert env.step('<call expert="a">q</call>')[4]["step_cost_usd"] == pytest.approx(again.cost_usd)
    env.close()


@pytest.mark.parametrize("content", [b"this is not a database at all" * 200, b"SQLite format 3\x00" + b"\x07" * 4000])
def test_a_garbage_cache_file_fails_at_load_naming_it(odd_server, tmp_path, monkeypatch, content):
    monkeypatch.setenv("ROBUST_KEY", SECRET)
    (tmp_path / "c.sqlite").write_bytes(content)
    with pytest.raises(ValueError) as error:
        load_pool(_openai_pool(tmp_path, odd_server))
    message = str(error.value)
    assert str(tmp_path / "c.sqlite") in message and "delete it" in message and SECRET not in message


def test_a_foreign_table_named_replies_fails_at_load(tmp_path):
    db = sqlite3.connect(tmp_path / "c.sqlite")
    db.execute("CREATE TABLE replies (id INTEGER)")
    db.commit()
    with pytest.raises(ValueError, match="not a usable cache file"):
        ExpertCache(tmp_path / "c.sqlite")


# ------------------------------------------------------------------------------------ 3. replay rows
def _replay_pool(folder: Path, rows: list[str], problems: list[str] | None = None) -> str:
    (folder / "r.jsonl").write_text("".join(row + "\n" for row in rows), encoding="utf-8")
    if problems is not None:
        (folder / "r_problems.jsonl").write_text("".join(row + "\n" for row in problems), encoding="utf-8")
    return _write(folder,
                  HEAD + "experts: [{name: a, backend: replay, model: m, price_in: 1, price_out: 1, file: r.jsonl}]\n")


GOOD = {"problem_id": "t-0", "model": "m", "correct": True, "prompt_tokens": 10, "completion_tokens": 5,
        "cost_usd": 0.5}
GOOD_ROW = json.dumps(GOOD)


@pytest.mark.parametrize("field, value", [
    ("cost_usd", math.nan), ("cost_usd", math.inf), ("cost_usd", -0.1), ("cost_usd", "0.1"),
    ("prompt_tokens", -3), ("prompt_tokens", "x"), ("completion_tokens", 2.5), ("completion_tokens", math.inf),
    ("correct", "false"), ("correct", 2), ("correct", None), ("model", None), ("cost_usd", 10**400),
])
def test_a_bad_replay_value_fails_at_load_with_file_and_line(tmp_path, field, value):
    row = json.dumps({**GOOD, field: value})  # NaN and Infinity as Python's json writes them
    with pytest.raises(ValueError) as error:
        load_pool(_replay_pool(tmp_path, [GOOD_ROW.replace("t-0", "t-1"), row]))
    assert f"{tmp_path / 'r.jsonl'}:2" in str(error.value) and f"`{field}`" in str(error.value)


def test_correct_may_be_0_or_1(tmp_path):
    rows = [GOOD_ROW.replace('"correct": true', '"correct": 1'),
            GOOD_ROW.replace("t-0", "t-1").replace('"correct": true', '"correct": 0')]
    pool = load_pool(_replay_pool(tmp_path, rows))
    right = pool.experts["a"].call("q", PROBLEM)
    wrong = pool.experts["a"].call("q", Problem(id="t-1", problem="What is 2+2?", answer="4", level=1))
    assert "\\boxed{2}" in right.text and "\\boxed{4}" not in wrong.text and right.cost_usd == 0.5


@pytest.mark.parametrize("problems, line", [
    (['{"problem_id": "t-0", "problem": "What is 1+1?"}', '{"problem": "What is 2+2?"}'], 2),
    (['{"problem_id": "t-0", "problem": 5}'], 1),
    (['{"problem_id": "t-0", "problem": "What is 1+1?"}', "{not json"], 2),
    (['["t-0", "What is 1+1?"]'], 1),
])
def test_a_bad_problems_row_fails_at_load_with_file_and_line(tmp_path, problems, line):
    with pytest.raises(ValueError) as error:
        load_pool(_replay_pool(tmp_path, [GOOD_ROW], problems))
    assert f"{tmp_path / 'r_problems.jsonl'}:{line}" in str(error.value)


def test_bad_estimate_options_fail_at_load(tmp_path):
    path = _replay_pool(tmp_path, [GOOD_ROW])
    text = Path(path).read_text().replace("file: r.jsonl", "file: r.jsonl, est_completion_tokens: -1")
    with pytest.raises(ValueError, match="est_completion_tokens"):
        load_pool(_write(tmp_path, text))


# ---------------------------------------------------------------------------------------- 4. pool files
@pytest.mark.parametrize("value", [".nan", ".inf", "-.inf", "0", "-1", "'cheap'", "true", "1" + "0" * 400])
def test_budgets_must_be_finite_positive_amounts(tmp_path, value):
    text = HEAD.replace("low: 0.001", f"low: {value}") + f"experts: [{SIM % ''}]\n"
    with pytest.raises(ValueError, match="budgets: low must be a finite USD amount > 0"):
        load_pool(_write(tmp_path, text))


@pytest.mark.parametrize("option", ["rpm: -5", "rpm: .nan", "rpm: .inf", "rpm: 0", "tpm: -100", "tpm: .nan",
                                    "rpm: '60'", "timeout: .nan", "timeout: 0", "backoff_base_s: .nan",
                                    "concurrency: 0", "max_tokens: -1", "rpm: 1" + "0" * 400,
                                    "max_tokens: 1" + "0" * 400])
def test_bad_rate_limits_and_timeouts_fail_at_load_instead_of_hanging(tmp_path, option):
    entry = ("{name: a, backend: openai, model: m, price_in: 1, price_out: 1, base_url: 'http://127.0.0.1:9/v1', "
             f"api_key_env: null, {option}}}")
    with pytest.raises(ValueError) as error:
        load_pool(_write(tmp_path, HEAD + f"experts: [{entry}]\n"))
    assert str(tmp_path / "pool.yaml") in str(error.value) and f"`{option.split(':')[0]}`" in str(error.value)


@pytest.mark.parametrize("rpm, tpm", [(-5, None), (math.nan, None), (0, None), (None, -100), (None, math.inf),
                                      ("60", None)])
def test_the_rate_limiter_refuses_a_limit_that_never_refills(rpm, tpm):
    with pytest.raises(ValueError, match="finite number > 0"):
        RateLimiter(rpm=rpm, tpm=tpm)
    assert not RateLimiter().active and RateLimiter(rpm=60.5).active


@pytest.mark.parametrize("field, value", [("name", "[a]"), ("model", "{x: 1}"), ("description", "[1, 2]"),
                                          ("name", "''"), ("model", "7"), ("base_url", "[h]")])
def test_entry_strings_must_be_strings(tmp_path, field, value):
    entry = {"name": "a", "model": "m", "description": "d", "base_url": "'http://127.0.0.1:9/v1'"}
    entry[field] = value
    text = ("experts: [{backend: openai, price_in: 1, price_out: 1, api_key_env: null, "
            + ", ".join(f"{k}: {v}" for k, v in entry.items()) + "}]\n")
    with pytest.raises(ValueError, match=f"`{field}` must be"):
        load_pool(_write(tmp_path, HEAD + text))


def test_an_alias_bomb_is_refused_before_it_is_expanded(tmp_path):
    levels = "".join(f"      - &x{i} [" + ", ".join([f"*x{i - 1}"] * 9) + "]\n" for i in range(1, 9))
    text = (HEAD + "experts:\n  - name: a\n    backend: sim\n    model: m\n    price_in: 0\n    price_out: 0\n"
            "    accuracy: {1: 0.5}\n    notes:\n      - &x0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n"
            + levels + "    description: *x8\n")
    assert len(text) < 2000  # 9 ** 9 values in two kilobytes
    with pytest.raises(ValueError, match="aliases .* expand to more than"):
        load_pool(_write(tmp_path, text))


def test_modest_aliases_still_work(tmp_path):
    text = HEAD + (
        "experts:\n  - &a {name: a, backend: sim, model: m, price_in: 0, price_out: 0, accuracy: {1: 0.5}}\n"
        "  - {<<: *a, name: b}\n"
    )
    assert load_pool(_write(tmp_path, text)).expert_names() == ["a", "b"]


@pytest.mark.parametrize("text, message", [
    ("[" * 50_000, "not valid YAML"),
    ("{a: " * 50_000, "not valid YAML"),
    (HEAD + "experts: &r [*r]\n", "recursive alias"),
])
def test_pathological_yaml_is_a_clear_error(tmp_path, text, message):
    with pytest.raises(ValueError, match=message) as error:
        load_pool(_write(tmp_path, text))
    assert str(tmp_path / "pool.yaml") in str(error.value)


def test_a_pool_file_that_is_not_utf8_names_itself(tmp_path):
    (tmp_path / "pool.yaml").write_bytes(HEAD.encode() + b"experts: [\xff\xfe]\n")
    with pytest.raises(ValueError, match="not UTF-8"):
        load_pool(str(tmp_path / "pool.yaml"))


# ----------------------------------------------------------------- 5. errors that keep their message
def test_a_replay_file_that_is_not_utf8_is_a_value_error_naming_it(tmp_path):
    path = _replay_pool(tmp_path, [GOOD_ROW])
    with open(tmp_path / "r.jsonl", "ab") as handle:
        handle.write(b'{"problem_id": "t-1", "model": "m", "correct": true, "answer": "\xff"}\n')
    with pytest.raises(ValueError) as error:
        load_pool(path)
    assert str(tmp_path / "r.jsonl") in str(error.value) and "not UTF-8" in str(error.value)
    assert f"{path}: expert 'a'" in str(error.value)


def test_any_value_error_subclass_from_a_backend_keeps_the_pool_context(tmp_path, monkeypatch):
    import corl_gym.experts.pool as pool_module

    def broken(spec, **kwargs):
        raise json.JSONDecodeError("Expecting value", "{", 1)

    monkeypatch.setattr(pool_module, "make_expert", broken)
    with pytest.raises(ValueError, match=r"pool\.yaml: expert 'self': Expecting value") as error:
        load_pool(_write(tmp_path, HEAD + f"experts: [{SIM % ''}]\n"))
    assert isinstance(error.value.__cause__, json.JSONDecodeError)

"""Expert pools: a controller profile, a roster of experts and budget thresholds, from a YAML file.

A pool file has `name`, `controller` (an expert entry: where a policy's own answer comes from when no
LLM controller is plugged in), `experts` (a list of entries, kept in file order), `budgets` (mode ->
USD per query; `low`, `medium`, `high` required), and optionally `dataset` (the env's default problems:
a replay pool brings its own), `description` and `charge_controller` (default false: the controller's
own tokens are free, as in the paper; true: an LLM controller that reports its usage, such as a prompted
API model, is charged for it against the episode's budget). Each entry has `name`, `backend`, `model`,
`description`, `price_in`, `price_out` (USD per 1M tokens) and backend options.

Built-in pools live in `corl_gym/experts/pools/<name>.yaml`; any other YAML path works too.

Checks at load (each error names the file): budgets are finite USD amounts above 0 with low <= medium <=
high; `name`, `backend`, `model` and `description` are strings; an entry's keys are the ones its backend
reads (a misspelt one is an error with a "did you mean"), and options are checked by
`registry.parse_entry` (`rpm`, `tpm` and `timeout` finite and above 0, token counts and prices never
negative, ...); YAML aliases may share values but not expand past
`MAX_YAML_VALUES` values, and nesting too deep for the parser is a "not valid YAML" error.

Production options: an entry may carry `cache: {path, mode}` (the SQLite expert cache, `cache.py`; a
relative path is relative to the pool file, `$CORL_DATA_DIR/...` works), and `load_pool` takes a run's
`ledger` (spend, retries, failures, the spend cap: `ledger.py`) and a `cache` that overrides every entry's
(a bench's `--cache PATH --cache-mode MODE`). With either, each expert is wrapped in a `ManagedExpert`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import difflib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from corl_gym.budget import BUDGET_MODES
from corl_gym.data import Problem
from corl_gym.experts.base import Expert, ExpertReply, ExpertSpec, checked_reply, error_reply, is_finite
from corl_gym.experts.cache import MODES, CacheConfig
from corl_gym.experts.ledger import Ledger
from corl_gym.experts.loop import LoopThread, ensure
from corl_gym.experts.managed import ManagedExpert
from corl_gym.experts.registry import make_expert, parse_entry

POOLS_DIR = Path(__file__).resolve().parent / "pools"
POOL_NAMES: tuple[str, ...] = ("sim-paper", "paper", "llmrouter-math", "llmrouter-gsm8k", "zeroeval-math-l5")
SIMULATED_BACKENDS = ("sim", "replay")  # backends whose calls cost no money (running them again is free)
_TOP_KEYS = {"name", "controller", "experts", "budgets", "dataset", "description", "charge_controller"}
_SHOWN_IDS = 5
MAX_YAML_VALUES = 100_000  # values a pool file may stand for with its aliases expanded (built-in ones: < 1000)

_LOG = logging.getLogger(__name__)


@dataclass
class Pool:
    """A loaded pool. `experts` keeps file order; `budgets` maps a mode to its USD threshold."""

    name: str
    controller: Expert
    experts: dict[str, Expert]
    budgets: dict[str, float]
    dataset: str | None = None
    ledger: Ledger | None = None
    charge_controller: bool = False
    _runner: LoopThread | None = field(default=None, repr=False, compare=False)
    _controller_failures: set[str] = field(default_factory=set, repr=False, compare=False)

    def expert_names(self) -> list[str]:
        return list(self.experts)

    def expected_costs(self, query: str) -> dict[str, float]:
        """Expert name -> what a call with `query` is expected to cost (`ExpertSpec.expected_cost`), in pool
        order: the estimate the hard cap, the routing env's masks and budget-aware routers go by."""
        return {name: expert.spec.expected_cost(query) for name, expert in self.experts.items()}

    @property
    def simulated(self) -> bool:
        """True when every entry is simulated or replayed: its dollars are computed, never paid."""
        return all(e.spec.backend in SIMULATED_BACKENDS for e in [self.controller, *self.experts.values()])

    def get(self, name: str) -> Expert:
        """An expert by name; the controller's name gives the controller."""
        if name in self.experts:
            return self.experts[name]
        if name == self.controller.name:
            return self.controller
        raise KeyError(f"pool {self.name!r} has no expert {name!r}; experts: {', '.join(self.experts)}")

    def ask(self, expert: Expert, query: str, problem: Problem) -> ExpertReply:
        """One blocking call that never raises: a backend exception or a malformed reply becomes the
        reply's `error` (`checked_reply`)."""
        try:
            reply = expert.call(query, problem)
        except Exception as exc:  # noqa: BLE001 - any backend failure is the call's error, by design
            reply = error_reply(exc)
            reply = dataclasses.replace(reply, error=reply.error[:500])
        return checked_reply(reply, expert.name)

    def call(self, name: str, query: str, problem: Problem) -> ExpertReply:
        """`ask` the expert called `name` (an unknown name is the reply's `error`). The controller is asked
        with `call_controller`, never by name: an expert may share its name."""
        expert = self.experts.get(name)
        if expert is None:
            known = ", ".join(self.experts)
            return ExpertReply(text="", error=f"pool {self.name!r} has no expert {name!r}; experts: {known}",
                               error_kind="exception")
        return self.ask(expert, query, problem)

    def call_controller(self, query: str, problem: Problem) -> ExpertReply:
        """`ask` the controller model itself (its own answer, which the env does not bill). A failure is
        logged once per kind of error: a controller endpoint that is down would otherwise make a whole
        benchmark score 0 on "self" in silence."""
        reply = self.ask(self.controller, query, problem)
        if reply.error is None:
            return reply
        kind = reply.error.split(":", 1)[0][:80]
        if kind not in self._controller_failures:
            self._controller_failures.add(kind)
            _LOG.warning("pool %r: the controller's own call failed (%s); its answer counts as empty", self.name,
                         reply.error[:200])
        return reply

    def check_covers(self, problems: list[Problem]) -> None:
        """Raise ValueError when an expert (a replay one) cannot answer some of `problems`."""
        for expert in [self.controller, *self.experts.values()]:
            missing = expert.uncovered(problems)
            if missing:
                shown = ", ".join(missing[:_SHOWN_IDS]) + (", ..." if len(missing) > _SHOWN_IDS else "")
                raise ValueError(
                    f"pool {self.name!r}: expert {expert.name!r} has no recorded answer for "
                    f"{len(missing)} of {len(problems)} problems ({shown}); use the pool's own dataset "
                    f"({self.dataset!r}) or a subset of it"
                )

    async def acall_many(self, calls: list[tuple[str, str, Problem]]) -> list[ExpertReply]:
        """Answer (expert name, query, problem) calls concurrently on the running event loop, in order.

        Calls to one expert go through its `acall_batch` (which honours its `concurrency` and lets
        batching backends batch); never raises: an unknown expert or a failure becomes a reply's
        `error`."""
        replies: list[ExpertReply | None] = [None] * len(calls)
        groups: dict[str, list[int]] = {}
        for index, (name, _, _) in enumerate(calls):
            groups.setdefault(name, []).append(index)

        async def run_group(name: str, indices: list[int]) -> None:
            try:
                expert = self.get(name)
                batch = list(await expert.acall_batch([(calls[i][1], calls[i][2]) for i in indices]))
            except Exception as exc:  # acall_batch never raises; a backend's that does failed the whole batch
                batch = [error_reply(exc)] * len(indices)
            for index, reply in zip(indices, batch):  # each reply on its own: a malformed one spoils no other
                replies[index] = checked_reply(reply, name)

        await asyncio.gather(*(run_group(name, indices) for name, indices in groups.items()))
        return [reply if reply is not None else error_reply(RuntimeError("no reply")) for reply in replies]

    def call_many(self, calls: list[tuple[str, str, Problem]]) -> list[ExpertReply]:
        """Blocking `acall_many`; works whether or not an event loop is running in this thread. The calls
        run on the pool's own background loop, so network clients and their connections live from one
        batch (a vector env's step) to the next instead of being opened per batch."""
        self._runner = ensure(self._runner, f"pool-{self.name}")
        return self._runner.run(self.acall_many(calls))

    def close(self) -> None:
        for expert in [self.controller, *self.experts.values()]:
            expert.close()
        if self._runner is not None:
            self._runner.stop()
            self._runner = None


def pool_path(name_or_path: str) -> Path:
    """The YAML file of a built-in pool name or a path; ValueError lists the valid names otherwise."""
    if name_or_path in POOL_NAMES:
        return POOLS_DIR / f"{name_or_path}.yaml"
    path = Path(name_or_path).expanduser()
    if path.suffix in (".yaml", ".yml") or path.is_file():
        if not path.is_file():
            raise FileNotFoundError(f"pool file {path} does not exist")
        return path
    raise ValueError(f"unknown pool {name_or_path!r}; valid names: {', '.join(POOL_NAMES)} (or a YAML path)")


def load_pool(name_or_path: str, *, seed: int = 0, ledger: Ledger | None = None,
              cache: CacheConfig | None = None) -> Pool:
    """Load a built-in pool by name or a pool YAML file. `seed` fixes simulated experts' outcomes;
    `ledger` books every call of the pool (and enforces its spend cap); `cache` overrides the entries'
    `cache` option (its `path` may be None to keep each entry's file and change only the mode)."""
    path = pool_path(name_or_path)
    raw = _read_yaml(path)
    where = str(path)
    _check_top(raw, where)
    budgets = _budgets(raw["budgets"], where)
    charge_controller = _flag(raw.get("charge_controller", False), "charge_controller", where)
    specs = [parse_entry(raw["controller"], f"{where}: controller")]
    for index, entry in enumerate(raw["experts"]):
        label = entry.get("name") if isinstance(entry, dict) and isinstance(entry.get("name"), str) else f"#{index + 1}"
        specs.append(parse_entry(entry, f"{where}: expert {label}"))
    names = [spec.name for spec in specs[1:]]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ValueError(f"{where}: duplicate expert name(s) {', '.join(duplicates)}")
    experts = []
    try:
        for spec in specs:
            expert = make_expert(spec, seed=seed, base_dir=path.parent)
            experts.append(expert)
            entry_cache = _cache_config(spec, cache, path.parent)
            if ledger is not None or entry_cache is not None:
                experts[-1] = ManagedExpert(expert, cache=entry_cache, ledger=ledger,
                                            account=f"{raw['name']}/{spec.name}")
                if ledger is not None and spec.backend in SIMULATED_BACKENDS:
                    ledger.mark_simulated(experts[-1].account)
    except Exception as exc:
        for expert in experts:
            expert.close()
        if isinstance(exc, (ValueError, FileNotFoundError, ImportError)):
            # the plain class: subclasses (UnicodeDecodeError, JSONDecodeError) take other arguments
            kind = next(
                k for k in (FileNotFoundError, ModuleNotFoundError, ImportError, ValueError) if isinstance(exc, k)
            )
            raise kind(f"{where}: expert {spec.name!r}: {exc}") from exc
        raise
    return Pool(
        name=raw["name"],
        controller=experts[0],
        experts={expert.name: expert for expert in experts[1:]},
        budgets=budgets,
        dataset=_dataset(raw.get("dataset"), path.parent),
        ledger=ledger,
        charge_controller=charge_controller,
    )


def _dataset(value: Any, base_dir: Path) -> Any:
    """The pool's default dataset: a name as is; a JSONL path relative to the pool file (as `file:` is)."""
    if isinstance(value, str) and value.endswith(".jsonl"):
        from corl_gym.experts.replay import resolve_data_path

        return str(resolve_data_path(value, base_dir))
    return value


def _read_yaml(path: Path) -> Any:
    """The parsed pool file. Errors are ValueErrors naming the file: bad UTF-8, bad YAML, nesting too deep
    for the parser, and aliases that expand past `MAX_YAML_VALUES` values (a few lines of nested aliases
    can stand for billions of values, which anything that walks them, such as `str`, would spend hours on)."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not UTF-8 text ({exc}); a pool file is UTF-8 YAML") from exc
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        size = _expanded_size(node)
        if size > MAX_YAML_VALUES:
            raise ValueError(f"{path}: its aliases (*name) expand to more than {MAX_YAML_VALUES} values (an alias "
                             f"bomb?); write the values out, or use fewer aliases")
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: not valid YAML: {exc}") from exc
    except RecursionError as exc:
        raise ValueError(f"{path}: not valid YAML: nested too deeply for a pool file") from exc
    finally:
        loader.dispose()


def _expanded_size(root: yaml.Node) -> int:
    """How many values `root` stands for with every alias written out (stops counting past the limit);
    a YAMLError for an alias to one of its own ancestors (a value that contains itself)."""
    sizes: dict[int, int] = {}
    path: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, finished = stack.pop()
        children = _children(node)
        if finished:
            path.discard(id(node))
            sizes[id(node)] = 1 + sum(sizes[id(child)] for child in children)
            if sizes[id(node)] > MAX_YAML_VALUES:
                return sizes[id(node)]
            continue
        if id(node) in sizes:
            continue
        path.add(id(node))
        stack.append((node, True))
        for child in children:
            if id(child) in path:
                raise yaml.YAMLError(f"a recursive alias (a value that contains itself) {child.start_mark}")
            if id(child) not in sizes:
                stack.append((child, False))
    return sizes[id(root)]


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [item for pair in node.value for item in pair]
    return []


def _cache_config(spec: ExpertSpec, override: CacheConfig | None, base_dir: Path) -> CacheConfig | None:
    """An entry's cache: its `cache: {path, mode}` option, with the run's override on top."""
    raw = spec.options.get("cache")
    if raw is not None and (not isinstance(raw, dict) or set(raw) - {"path", "mode"}):
        raise ValueError(f"`cache` must be a mapping with keys path and mode (one of {', '.join(MODES)}), got {raw!r}")
    raw = dict(raw or {})
    if override is not None:
        if override.path is None and not raw.get("path"):
            return None  # the override changes modes only, and this entry has no cache of its own
        raw = {"path": override.path or raw.get("path"), "mode": override.mode}
    if not raw or raw.get("mode", "read-write") == "off":
        return None
    from corl_gym.experts.replay import resolve_data_path

    if not raw.get("path"):
        raise ValueError(f"cache mode {raw.get('mode')!r} needs a cache file path")
    return CacheConfig(path=str(resolve_data_path(str(raw["path"]), base_dir)), mode=str(raw.get("mode", "read-write")))


def _check_top(raw: Any, where: str) -> None:
    if not isinstance(raw, dict):
        raise ValueError(f"{where}: a pool file must be a mapping with keys name, controller, experts, budgets")
    missing = [key for key in ("name", "controller", "experts", "budgets") if key not in raw]
    if missing:
        raise ValueError(f"{where}: missing key(s) {', '.join(missing)}")
    unknown = sorted(map(str, set(raw) - _TOP_KEYS))
    if unknown:
        close = difflib.get_close_matches(unknown[0], _TOP_KEYS, n=1)
        hint = f" (did you mean `{close[0]}`?)" if close else ""
        raise ValueError(f"{where}: unknown key(s) {', '.join(unknown)}{hint}; valid: {', '.join(sorted(_TOP_KEYS))}")
    if not isinstance(raw["experts"], list) or not raw["experts"]:
        raise ValueError(f"{where}: `experts` must be a non-empty list of expert entries")
    if not isinstance(raw["name"], str) or not raw["name"].strip():
        raise ValueError(f"{where}: `name` must be a non-empty string")
    for key in ("dataset", "description"):
        if raw.get(key) is not None and not isinstance(raw[key], str):
            raise ValueError(f"{where}: `{key}` must be a string, got a {type(raw[key]).__name__}")


def _flag(value: Any, key: str, where: str) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{where}: `{key}` must be true or false, got {value!r}")
    return value


def _budgets(raw: Any, where: str) -> dict[str, float]:
    if not isinstance(raw, dict):
        raise ValueError(f"{where}: `budgets` must map modes ({', '.join(BUDGET_MODES)}) to USD per query")
    missing = [mode for mode in BUDGET_MODES if mode not in raw]
    if missing:
        raise ValueError(f"{where}: budgets: missing mode(s) {', '.join(missing)}")
    budgets = {}
    for mode, value in raw.items():
        if not isinstance(mode, str):
            raise ValueError(f"{where}: budgets: a mode name must be a string, got {mode!r}")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not is_finite(value) or value <= 0:
            raise ValueError(f"{where}: budgets: {mode} must be a finite USD amount > 0 per query, got {value!r}")
        budgets[mode] = float(value)
    if not budgets["low"] <= budgets["medium"] <= budgets["high"]:
        shown = ", ".join(f"{mode} ${budgets[mode]:g}" for mode in BUDGET_MODES)
        raise ValueError(f"{where}: budgets must satisfy low <= medium <= high, got {shown}")
    return budgets

r"""Answer verification for the reward: `check`, `is_equivalent`, `extract_answer`, `check_many`.

How a pair is decided (each step only runs when the previous one could not decide):

1. Normalise both strings (`corl_gym.verify.norm.normalize`: wrappers, units, separators, ...).
   Identical spellings are CORRECT; word answers and multiple-choice letters compare as words.
2. Fast path, in the calling thread, no sympy: our bounded parser builds a tree and exact rational
   arithmetic decides (integers, decimals, fractions, complex numbers, tuples, intervals, sets...).
   Inputs past a safety cap (power towers, `(10^6)!`, 10k nested braces) are UNPARSEABLE at once.
3. Slow path, in a killable worker process with a hard deadline: sympy objects built from our
   own tree (radicals, pi, polynomials, equations), and math-verify for syntax our parser does not
   know. A worker that misses the deadline is killed and the verdict is TIMEOUT.

The rules for "equivalent" are in `corl_gym.verify.compare` (shared by both paths) and
`corl_gym.verify.symbolic`. Model output never reaches `eval`, `sympify` or `parse_expr`.

The modules, each importing only those listed before it (the worker module is loaded lazily, when a
pair first needs it; sympy and math-verify load only inside the worker process):

- `tokens`: size caps, `ParseError`/`LimitExceeded`, tokens and exact number literals.
- `parse`: the bounded parser from normalised LaTeX to a tuple tree.
- `norm`: answer extraction and normalisation (plain string work).
- `compare`: what counts as equivalent, shared by both paths.
- `fast`: exact Gaussian-rational arithmetic (the fast path).
- `symbolic`: sympy and math-verify (the slow path; only ever run inside a worker).
- `worker`: the killable worker processes and their pool; `python -m corl_gym.verify.worker` is a worker.
- `decide`: the verdicts and the entry points re-exported here.
"""

from __future__ import annotations

from .decide import MAX_INPUT_CHARS, Verdict, acheck, check, check_many, fast_path, is_equivalent, warm_up
from .norm import extract_answer
from .parse import LimitExceeded, ParseError

__all__ = [
    "Verdict", "check", "acheck", "is_equivalent", "extract_answer", "check_many", "fast_path", "warm_up",
    "MAX_INPUT_CHARS", "ParseError", "LimitExceeded",
]

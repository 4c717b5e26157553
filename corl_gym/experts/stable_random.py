"""Stable pseudo-randomness keyed by strings, for simulated and replayed experts.

Python's `hash()` is salted per process, so it cannot make an expert deterministic across runs; these
helpers hash the key with BLAKE2b instead. The same key gives the same draw on every machine, process
and Python version, which is what "deterministic per (problem id, expert, seed)" needs.
"""

from __future__ import annotations

import hashlib
import random
from statistics import NormalDist

_STANDARD_NORMAL = NormalDist()


def _digest(*keys: object) -> int:
    text = "\x1f".join(str(key) for key in keys)
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "big")


def uniform(*keys: object) -> float:
    """A draw in the open interval (0, 1), fixed by `keys`."""
    return (_digest(*keys) + 0.5) / 2.0**64


def normal(*keys: object) -> float:
    """A standard normal draw fixed by `keys` (inverse CDF of `uniform`)."""
    return _STANDARD_NORMAL.inv_cdf(uniform(*keys))


def rng(*keys: object) -> random.Random:
    """A `random.Random` seeded by `keys`, for choices that need several draws."""
    return random.Random(_digest(*keys))


def phi_inv(p: float) -> float:
    """Inverse standard normal CDF, clamped away from 0 and 1."""
    return _STANDARD_NORMAL.inv_cdf(min(max(p, 1e-12), 1 - 1e-12))

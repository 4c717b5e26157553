"""The built-in `synthetic` problem set: seeded math problems with exact, sympy-computed answers.

Decisions:
- Problem `i` depends only on `(seed, i)`: its generator is `random.Random(f"corl-synthetic/{seed}/{i}")`
  (string seeds hash with SHA-512, so every machine and Python version draws the same numbers), so asking
  for 100 or 5000 problems gives the same first 100.
- Levels are balanced by construction (`level = i % 5 + 1`) and the family cycles every 5 indices, so every
  family appears at every level. Difficulty grows with the level: bigger numbers, more terms, more steps.
- Answers are computed with sympy objects (exact rationals, surds, pi) and written in the MATH style:
  integers plain, `-\\frac{3}{4}`, `2\\sqrt{3}`, `\\frac{32\\pi}{3}`, root lists ascending as `-2, 5`,
  ordered pairs `(3, -2)`, terminating percentages as decimals (`7.5`).
- 17 families (`FAMILIES`, the `subject` of each problem): arithmetic, fractions, percentages, linear and
  quadratic equations, linear systems, modular arithmetic, gcd/lcm, counting, probability, polynomials,
  sequences, geometry, exponents and logs, radicals, number theory, statistics.
- sympy is imported here, and `corl_gym.data` imports this module only when `synthetic` is asked for.
"""

from __future__ import annotations

import random
from functools import lru_cache

from corl_gym.problem import Problem
from corl_gym.synthetic.families import FAMILIES, FAMILY_ORDER

DEFAULT_SEED = 2025
DEFAULT_SIZE = 5000
__all__ = ["DEFAULT_SEED", "DEFAULT_SIZE", "FAMILIES", "generate", "make_problem"]


@lru_cache(maxsize=50_000)
def make_problem(index: int, seed: int = DEFAULT_SEED) -> Problem:
    """Problem `index` of the synthetic set for `seed` (cached: repeated env construction is free)."""
    rng = random.Random(f"corl-synthetic/{seed}/{index}")
    level = index % 5 + 1
    family = FAMILY_ORDER[(index // 5) % len(FAMILY_ORDER)]
    text, answer = FAMILIES[family](rng, level)
    pid = f"synthetic-{index}" if seed == DEFAULT_SEED else f"synthetic-s{seed}-{index}"
    return Problem(id=pid, problem=text, answer=answer, level=level, subject=family, dataset="synthetic")


def generate(n: int = DEFAULT_SIZE, seed: int = DEFAULT_SEED) -> list[Problem]:
    """The first `n` problems for `seed`; problem `i` is the same whatever `n` is."""
    return [make_problem(i, seed) for i in range(n)]

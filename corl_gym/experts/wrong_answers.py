"""Plausible wrong answers for simulated and replayed experts.

A simulated expert that is wrong must still write a final answer a verifier parses, and that answer must
not be equivalent to the gold one; otherwise a controller could "win" by echoing a wrong reply. The
perturbations mimic real slips: off by one or two, a sign error, a swapped or changed digit, a doubled
value, a changed leading number inside an expression. Answers without digits (multiple-choice letters, words,
symbolic expressions) get a clearly different answer of the same kind.

`wrong_answer(gold, *keys)` is deterministic in its keys, so a replayed or simulated wrong reply is the
same on every call.
"""

from __future__ import annotations

import re

from corl_gym.experts import stable_random

_INT = re.compile(r"-?\d+")
_DECIMAL = re.compile(r"-?\d*\.\d+")
_NUMBER = re.compile(r"\d+(?:\.\d+)?")
_CHOICE = re.compile(r"^(\\text\{)?\(?([A-E])\)?(\})?$")
_OPPOSITES = {"odd": "even", "even": "odd", "yes": "no", "no": "yes", "true": "false", "false": "true"}


def strip_answer(gold: str) -> str:
    """The bare answer: outer `$...$` and `\\boxed{...}` removed, whitespace trimmed."""
    text = gold.strip()
    while text.startswith("$") and text.endswith("$") and len(text) >= 2:
        text = text[1:-1].strip()
    match = re.fullmatch(r"\\boxed\{(.*)\}", text, flags=re.S)
    return match.group(1).strip() if match else text


def _wrong_int(text: str, rand) -> str:
    value = int(text)
    digits = str(abs(value))
    candidates = {value + 1, value - 1, value + 2, value - 2, 2 * value, value + 10}
    if value != 0:
        candidates.add(-value)
    if len(digits) >= 2 and digits[-1] != digits[-2]:  # transposed last two digits
        swapped = int(digits[:-2] + digits[-1] + digits[-2])
        candidates.add(-swapped if value < 0 else swapped)
    candidates.discard(value)
    return str(rand.choice(sorted(candidates)))


def _wrong_decimal(text: str, rand) -> str:
    last = int(text[-1])
    step = rand.choice((1, -1, 2))
    return text[:-1] + str((last + step) % 10)


def _wrong_symbolic(text: str, rand) -> str:
    """Change the leading number of a larger expression (fraction, root, tuple, power, value with units).

    The leading number is the value itself in "15 cm^2" (a verifier ignores units, so changing the
    exponent would not do) and the numerator of a fraction (changing both parts could keep the ratio).
    For "0.56 = 56%" a verifier may read either side, so only the last side is kept and changed."""
    if "=" in text:
        return wrong_answer(text.rsplit("=", 1)[1], rand.random())
    target = _NUMBER.search(text)
    token = target.group(0)
    replacement = _wrong_decimal(token, rand) if "." in token else str(int(token) + rand.choice((1, 2)))
    return text[: target.start()] + replacement + text[target.end():]


def _wrong_without_digits(text: str) -> str:
    choice = _CHOICE.match(text)
    if choice:
        letter = "ABCDE"[("ABCDE".index(choice.group(2)) + 1) % 5]
        return text.replace(choice.group(2), letter)
    word = re.sub(r"\\text\{(.*)\}", r"\1", text).strip().lower()
    if word in _OPPOSITES:
        return text.lower().replace(word, _OPPOSITES[word])
    if "\\infty" in text and "," not in text:
        return text[1:] if text.startswith("-") else "-" + text
    if text.startswith("\\text{"):  # a named answer, e.g. a person or a property
        return "\\text{none of these}"
    if re.search(r"[A-Za-z]", text):  # a symbolic expression: shift it by a constant
        return f"{text} + 1"
    return "0"


def wrong_answer(gold: str, *keys: object) -> str:
    """A plausible answer not equivalent to `gold`, chosen deterministically from `keys`."""
    text = strip_answer(gold)
    rand = stable_random.rng("wrong-answer", text, *keys)
    compact = text.replace(",", "") if re.fullmatch(r"-?\d{1,3}(,\d{3})+", text) else text
    if _INT.fullmatch(compact):
        return _wrong_int(compact, rand)
    if _DECIMAL.fullmatch(text):
        return _wrong_decimal(text, rand)
    if _NUMBER.search(text):
        return _wrong_symbolic(text, rand)
    return _wrong_without_digits(text)

"""String-level work for `corl_gym.verify`: answer extraction and normalisation.

Everything here is plain string processing with linear-time regexes and explicit size caps, so it
is safe to run in the caller's thread on untrusted model output (it cannot hang, recurse deeply or
allocate much). Nothing here evaluates anything.
"""

from __future__ import annotations

import functools
import re

#: Answers longer than this (after extraction) are refused as UNPARSEABLE: no competition answer is
#: anywhere near this long, and refusing early keeps 100k-character garbage off every slow path.
MAX_ANSWER_CHARS = 1000
#: `extract_answer` looks at most at this many characters from the end of a model's text.
MAX_TEXT_CHARS = 200_000
#: Texts up to this long have their answer remembered (`_remembered_answer`): the answers an env grades and
#: the replies of simulated and replayed experts come back again and again, LLM essays rarely do.
MAX_REMEMBERED_CHARS = 1_000
#: How many such texts are remembered: enough for a few replies per problem of a dataset of thousands (an
#: env meets each problem's replies again only after going through the others), at most ~35 MB.
REMEMBERED_TEXTS = 32_768

_BOXED = re.compile(r"\\(?:boxed|fbox)\s*")
_GSM8K_MARK = re.compile(r"####\s*([^\n]+)")
_PHRASE_HEAD = re.compile(r"final answer|answer is|answer:|answer =", re.I)
_SPACE_RUN = re.compile(r"\s*")
_MATH_OPENER = re.compile(r"\$|\\[(\[]")
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?|-?\.\d+")
_PROSE = re.compile(r"(?<!\\)\b[A-Za-z]{2,}\s+[A-Za-z]{2,}\b")


def _balanced_group(text: str, start: int) -> tuple[str, int] | None:
    """The content of the brace group opening at `text[start]` and the index after it."""
    depth = 0
    for k in range(start, len(text)):
        ch = text[k]
        if ch == "\\":
            continue
        if ch == "{" and (k == 0 or text[k - 1] != "\\"):
            depth += 1
        elif ch == "}" and (k == 0 or text[k - 1] != "\\"):
            depth -= 1
            if depth == 0:
                return text[start + 1 : k], k + 1
    return None


def last_boxed(text: str) -> str | None:
    r"""Content of the last complete `\boxed{...}` (or `\fbox{...}`, or `\boxed 5`) in `text`."""
    # Only the last few boxes are tried: each try scans to the end, and garbage may hold thousands.
    for match in list(_BOXED.finditer(text))[-3:][::-1]:
        end = match.end()
        if end < len(text) and text[end] == "{":
            group = _balanced_group(text, end)
            if group is not None:
                return group[0].strip()
        elif match.group(0).endswith(" ") or end < len(text):
            token = re.match(r"[^\s$]+", text[end:])
            if token:
                return token.group(0)
    return None


def _looks_like_bare_answer(text: str) -> bool:
    """True for short text that is an answer rather than a sentence (no two prose words in a row)."""
    if len(text) > 200 or "\n" in text.strip():
        return False
    without_commands = re.sub(r"\\[A-Za-z]+(\{[^{}]*\})?", " ", text)
    return _PROSE.search(without_commands) is None


def extract_answer(text: str) -> str | None:
    r"""The final answer in a model's text, or None when there is none.

    A pure function of `text`; a plain `str` of at most `MAX_REMEMBERED_CHARS` characters has its answer
    remembered (the last `REMEMBERED_TEXTS` such texts), so a text seen again costs a lookup.

    Order, first hit wins: the last complete `\boxed{}` (nested braces balanced); else the content of
    the last `<answer>...</answer>` (itself searched for a box); else None if a box was opened but
    never closed (truncated output); else the fallback, meant for answers written without a box: a
    GSM8K `#### 42` marker, then an "answer is / final answer: / answer:" phrase, then a short text
    that is not prose is the answer itself (`x = 5`, `\frac{1}{2}`), then the last `$...$` math
    span, then the last number. The last-number rule is the usual GSM8K
    convention; it only runs when the text has no explicit answer marker at all.
    """
    if type(text) is str and len(text) <= MAX_REMEMBERED_CHARS:
        return _remembered_answer(text)
    return _extract_answer(text)


@functools.lru_cache(maxsize=REMEMBERED_TEXTS)
def _remembered_answer(text: str) -> str | None:
    return _extract_answer(text)


def _extract_answer(text: str) -> str | None:
    """`extract_answer`, worked out."""
    if not isinstance(text, str) or not text.strip():
        return None
    text = text[-MAX_TEXT_CHARS:]
    boxed = last_boxed(text)
    if boxed is not None:
        return boxed or None
    tag = _last_answer_tag(text)
    if tag is not None:
        inner = tag.strip()
        return (extract_answer(inner) if inner else None) if "<answer>" not in inner else None
    if _BOXED.search(text):  # a box was opened but never closed: truncated output, no answer
        return None
    return _fallback(text)


# The scanners below replace the lazy regexes `<answer>(.*?)</answer>`, `\$(.+?)\$` (and the other math
# delimiters) and `answer:\s*(?:is\s*)?[:=]?\s*([^\n]+)`, which backtrack quadratically on model output
# such as 50,000 unclosed `\(` or "Answer:" followed by a long run of newlines; this code runs in the
# caller's process, outside any deadline. The first two find exactly what their regexes found. The
# phrase scanner differs on purpose in two ways: the "is" of "isosceles" is not the verb, and a phrase
# with nothing after it is a truncated reply (no answer) rather than a capture of its own colon.


def _last_answer_tag(text: str) -> str | None:
    """The content of the last `<answer>...</answer>` pair, pairs taken left to right as a lazy regex would."""
    found, pos = None, 0
    while (start := text.find("<answer>", pos)) >= 0:
        end = text.find("</answer>", start + len("<answer>"))
        if end < 0:
            break
        found, pos = text[start + len("<answer>") : end], end + len("</answer>")
    return found


def _phrase_answers(text: str) -> tuple[list[str], bool]:
    """What follows each "final answer: / answer is / answer:" phrase, to the end of its line, and whether
    some phrase was followed by nothing at all."""
    hits, pos, dangling = [], 0, False
    while (head := _PHRASE_HEAD.search(text, pos)) is not None:
        k = _SPACE_RUN.match(text, head.end()).end()
        if text[k : k + 2].lower() == "is" and not text[k + 2 : k + 3].isalpha():  # not the "is" of "isosceles"
            k = _SPACE_RUN.match(text, k + 2).end()
        if text[k : k + 1] in (":", "="):
            k = _SPACE_RUN.match(text, k + 1).end()
        end = text.find("\n", k)
        end = len(text) if end < 0 else end
        if end > k:
            hits.append(text[k:end])
            pos = end
        else:  # "Answer:" and then nothing on the rest of the text: a truncated reply
            dangling = True
            pos = max(k, head.end())
    return hits, dangling


def _last_math_span(text: str) -> str | None:
    r"""The content of the last complete `$$..$$`, `$..$`, `\(..\)` or `\[..\]` span (spans left to right)."""
    closers = {"$$": "$$", "$": "$", "\\(": "\\)", "\\[": "\\]"}
    next_at: dict[str, int] = {}  # the first occurrence at or after the last search start, or -1

    def find(closer: str, start: int) -> int:
        # Searches only move forward, so a remembered hit at or past `start` is still the first one.
        known = next_at.get(closer)
        if known is None or (0 <= known < start):
            known = next_at[closer] = text.find(closer, start)
        return known

    found, pos = None, 0
    while (opener := _MATH_OPENER.search(text, pos)) is not None:
        i = opener.start()
        candidates = ("$$", "$") if text.startswith("$$", i) else (opener.group(0),)
        for candidate in candidates:
            begin = i + len(candidate)
            end = find(closers[candidate], begin + 1)  # at least one character of content
            if end >= 0:
                found, pos = text[begin:end], end + len(closers[candidate])
                break
        else:
            pos = i + 1
    return found


def _fallback(text: str) -> str | None:
    phrases, dangling = _phrase_answers(text)
    for hits in (_GSM8K_MARK.findall(text), phrases):
        if hits:
            value = hits[-1].strip().strip("*`").rstrip(".").strip()  # markdown emphasis is not the answer
            span = _last_math_span(value)
            if span is not None:
                value = span
            return value.strip("$*` ").strip() or None
    if dangling:  # "The answer is" and the reply ends: no answer, and the text is not one either
        return None
    stripped = text.strip()
    if _looks_like_bare_answer(stripped):
        return stripped.rstrip(".") or None
    span = _last_math_span(text)
    if span is not None:
        return span.strip() or None
    numbers = _NUMBER.findall(text)
    return numbers[-1].rstrip(",") if numbers else None


# --- normalisation ------------------------------------------------------------------------------

_REPLACEMENTS = [
    ("\\dfrac", "\\frac"), ("\\tfrac", "\\frac"), ("\\cfrac", "\\frac"),
    ("\\dbinom", "\\binom"), ("\\tbinom", "\\binom"),
    ("\\leqslant", "\\le"), ("\\geqslant", "\\ge"), ("\\leq", "\\le"), ("\\geq", "\\ge"),
    ("\\neq", "\\ne"), ("\\lt", "<"), ("\\gt", ">"), ("\\displaystyle", ""),
    ("\\bmatrix", "\\pmatrix"), ("bmatrix}", "pmatrix}"), ("vmatrix}", "pmatrix}"),
    ("\\mp", "\\pm"), ("\\lbrace", "\\{"), ("\\rbrace", "\\}"), ("\\lbrack", "["), ("\\rbrack", "]"),
    ("−", "-"), ("–", "-"), ("×", "\\times "), ("·", "\\cdot "), ("÷", "\\div "), ("π", "\\pi "),
    ("√", "\\sqrt"), ("≤", "\\le "), ("≥", "\\ge "), ("≠", "\\ne "), ("∞", "\\infty "),
    ("∪", "\\cup "), ("°", ""), ("\\infinity", "\\infty"), ("\\emptyset", "\\{\\}"),
    ("\\varnothing", "\\{\\}"), ("\\varpi", "\\pi"), ("\\mathbb{R}", "(-\\infty,\\infty)"),
]
_SIZING = re.compile(r"\\(?:left|right|big|Big|bigg|Bigg)(?![A-Za-z])\s*(\\[{}|]|[()\[\].|])?")
_PHANTOM = re.compile(r"\\[hv]?phantom\s*(?:\{[^{}]*\}|\S)")  # invisible: not part of the value
_SPACES = re.compile(r"(?<!\\)\\[,;:! ]|\\quad|\\qquad|~|\\hspace\{[^{}]*\}")
_DEGREES = re.compile(r"\^\s*\{?\s*\\circ\s*\}?|\\circ|\\degree|\^\{\\text\{o\}\}")
_TEXT_CMD = re.compile(r"\\(?:text|textbf|textit|mathrm|mbox|mathbf|operatorname|textnormal)\s*\{([^{}]*)\}")
_UNIT_TEXT = re.compile(r"\\(?:text|mbox|mathrm)\s*\{\s*[A-Za-z][A-Za-z .]*\}(\s*\^\s*\{?\d\}?)?")
_UNIT_WORDS = re.compile(
    # Needs a space before the unit and no single letters: `2m` is 2 times m, not 2 metres.
    r"(?<=[\d}])\s+(?:square |sq\.? |cubic )?(?:units?|cm|mm|km|meters?|metres?|inches|inch|feet|foot|ft|"
    r"yards?|miles?|mph|degrees?|cents?|dollars?|seconds?|minutes?|hours?|days?|weeks?|years?|"
    r"pounds?|ounces?|grams?|kg|liters?|litres?|ml)(?:\s*\^\s*\{?\d\}?)?\s*$"
)
_THOUSANDS_INLINE = re.compile(r"(?<=\d),\\!\s*(?=\d{3}(?!\d))|(?<=\d)\{,\}(?=\d{3}(?!\d))")
_THOUSANDS_WHOLE = re.compile(r"^-?\d{1,3}(?:(,)\d{3}|( )\d{3})+(?:\.\d+)?$")
_VAR_IN = re.compile(r"^[A-Za-z]\s*\\in\s*")
_CHOICE = re.compile(r"^\(?\s*([A-Ea-e])\s*\)?(?:\s|$|[.:])")


_CONNECTIVE = re.compile(r"\\(?:text|mbox|mathrm)\s*\{\s*,?\s*(?:or|and)\s*\}|\b(?:or|and)\b")


def _connective(s: str) -> str:
    """`or`/`and` between answers: a union between inequalities, else a list separator."""
    return " \\cup " if re.search(r"<|>|\\le|\\ge", s) else ", "


def normalize(answer: str) -> str:
    """Canonical spelling of one answer: wrappers, spacing, units and separators removed.

    What is dropped is decided here once: `$`/`\\(`/`\\boxed` wrappers, `\\left`/`\\right`, LaTeX
    spacing, degree marks (`90^\\circ` = `90`), percent signs (`50\\%` = `50`: MATH asks "what
    percent"), currency signs, trailing unit words and `\\text{ cm}^2`, thousands separators
    (`10,\\!080`, `1,000`, `1 000`), a leading `x \\in`, trailing full stops.
    """
    s = answer.strip()
    boxed = last_boxed(s)
    if boxed is not None:
        s = boxed
    s = s.strip().strip("$").strip()
    if len(s) > MAX_ANSWER_CHARS:  # refused by the caller; skip the regex work on huge input
        return s
    for opener, closer in (("\\(", "\\)"), ("\\[", "\\]")):
        if s.startswith(opener) and s.endswith(closer):
            s = s[2:-2].strip()
    for old, new in _REPLACEMENTS:
        s = s.replace(old, new)
    s = _THOUSANDS_INLINE.sub("", s)
    s = _SIZING.sub(lambda m: m.group(1) or "", s)
    s = _PHANTOM.sub("", s)
    s = _SPACES.sub(" ", s)
    s = _DEGREES.sub("", s)
    s = s.replace("\\%", "").replace("%", "").replace("\\$", "").replace("$", "")
    if not is_text_answer(s):
        connective = _connective(s)
        s = _CONNECTIVE.sub(lambda _: connective, s)
        s = _UNIT_TEXT.sub("", s) if re.search(r"[\d}]", _UNIT_TEXT.sub("", s)) else s
        s = _UNIT_WORDS.sub("", s) if re.search(r"\d", s) else s
    s = _VAR_IN.sub("", s.strip())
    s = re.sub(r",\s*(?=,)", "", s)  # `2, 3, and 4` left an empty item
    s = re.sub(r"\s+", " ", s).strip().rstrip(".,;").strip()
    if _THOUSANDS_WHOLE.match(s):
        s = s.replace(",", "").replace(" ", "")
    return s


def is_text_answer(s: str) -> bool:
    r"""A word answer: wholly `\text{...}`, or plain words with a run of three or more letters."""
    s = s.strip()
    inner = _TEXT_CMD.fullmatch(s)
    if inner:
        return bool(re.search(r"[A-Za-z]{2,}", inner.group(1))) and choice_letter(inner.group(1)) is None
    return bool(_WORDS.fullmatch(s)) and s not in _MATH_WORDS


# The first word is all letters, so "has a run of three letters" is "is three letters or longer"
# (written that way: `[A-Za-z]*[A-Za-z]{3,}[A-Za-z]*` backtracks cubically on a long word that fails).
_WORDS = re.compile(r"[A-Za-z]{3,}(?: [A-Za-z']+)*")


_MATH_WORDS = {"pi", "inf", "infty", "sqrt", "frac"}


def text_key(s: str) -> str | None:
    """Comparison key for word answers (the words, lower-case), or None when `s` is not just words.

    Only a `\\text{}` wrapper and word characters are allowed, so `-(\\text{even})` is not `even`.
    """
    inner = _TEXT_CMD.fullmatch(s.strip())
    s = inner.group(1) if inner else s
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9 '.\-]*", s.strip()):
        return None
    return re.sub(r"[^a-z0-9]+", " ", s.lower()).strip()


def choice_letter(s: str) -> str | None:
    r"""The option letter of a multiple-choice answer (`(C)`, `C`, `\text{(C)}`, `\textbf{(C) } 12`)."""
    s = _TEXT_CMD.sub(r"\1", s).strip()
    match = _CHOICE.match(s)
    return match.group(1).upper() if match else None

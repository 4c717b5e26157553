"""Correctness of corl_gym.verify: the labelled suite, equivalent spellings and near misses, extraction."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from corl_gym.benchmarks.verify_bench import SUITE as SUITE_FILE
from corl_gym.verify import Verdict, check, check_many, extract_answer, fast_path, is_equivalent

SUITE = [json.loads(line) for line in SUITE_FILE.read_text().splitlines()]


def test_suite_is_large_and_balanced() -> None:
    assert len(SUITE) >= 300
    assert 0.3 < sum(row["label"] for row in SUITE) / len(SUITE) < 0.7


def test_labelled_suite_agrees_completely() -> None:
    verdicts = check_many([(row["pred"], row["gold"]) for row in SUITE])
    wrong = [(row["pred"], row["gold"], row["label"], v.name) for row, v in zip(SUITE, verdicts)
             if (v is Verdict.CORRECT) != row["label"]]
    assert wrong == []


def test_check_many_matches_check_on_a_sample() -> None:
    sample = SUITE[::40]
    assert check_many([(r["pred"], r["gold"]) for r in sample]) == [check(r["pred"], r["gold"]) for r in sample]


@pytest.mark.parametrize(("pred", "gold"), [
    ("10080", "10,\\!080"), ("1,000", "1000"), ("1 000", "1000"), ("25", "025"), ("27.0", "27"),
    ("\\frac43", "\\dfrac{4}{3}"), ("4/3", "\\tfrac{4}{3}"), ("0.\\overline{3}", "\\frac{1}{3}"),
    ("1\\frac{4}{5}", "\\frac{9}{5}"), ("2\\sqrt{2}", "\\sqrt{8}"), ("\\frac{\\sqrt{3}}{3}", "\\frac{1}{\\sqrt{3}}"),
    ("1 - 12 i", "1-12i"), ("90", "90^\\circ"), ("50\\%", "50"), ("5.4", "5.4 \\text{ cents}"),
    ("\\boxed{5}", "$5$"), ("1.2\\times 10^{3}", "1200"), ("1.2e3", "1200"),
    ("(3,\\infty)\\cup(-\\infty,1)", "(-\\infty,1)\\cup(3,\\infty)"), ("x>2", "(2,\\infty)"),
    ("-2, 1", "1,-2"), ("1 \\pm \\sqrt{19}", "1+\\sqrt{19}, 1-\\sqrt{19}"), ("x=5", "5"),
    ("ab+2a+5b+10", "(a+5)(b+2)"), ("\\begin{bmatrix}1\\\\2\\end{bmatrix}", "\\begin{pmatrix}1\\\\2\\end{pmatrix}"),
    ("52", "52_8"), ("Evelyn", "\\text{Evelyn}"), ("C", "\\text{(C)}"), ("\\frac{\\pi}{2}", "\\pi/2"),
    ("y = 2x + 3", "2x - y + 3 = 0"), ("\\frac{\\cos x}{\\sin x}", "\\cot x"), ("e^{2}", "e^2"),
    ("2:8", "1:4"), ("\\frac23", "\\dfrac23 \\approx 0.67"), ("C, B", "\\text{B, C}"), ("0.(3)", "\\frac13"),
    ("x = 1 \\text{ or } x = -2", "1,-2"), ("x \\ne 2", "(-\\infty,2)\\cup(2,\\infty)"), ("\\mathbf{2340}", "2340"),
])
def test_equivalent_forms(pred: str, gold: str) -> None:
    assert check(pred, gold) is Verdict.CORRECT
    assert is_equivalent(pred, gold)


@pytest.mark.parametrize(("pred", "gold"), [
    ("-6", "6"), ("0.333", "\\frac{1}{3}"), ("(3,4)", "(3,4]"), ("2\\sqrt{3}", "\\sqrt{6}"), ("1", "1,-2"),
    ("1,-2,3", "1,-2"), ("24", "24!^2"), ("(2,1)", "(1,2)"), ("1.414", "\\sqrt{2}"), ("42", "52_8"),
    ("3.14", "\\pi"), ("\\text{west}", "\\text{east}"), ("-(\\text{even})", "\\text{even}"), ("-None", "None"),
    ("2m", "2"), ("0.67", "\\frac23 \\approx 0.67"), ("0.56 = 57\\%", "0.56 = 56\\%"), ("6:0", "5:0"),
    ("D", "\\text{(C)}"), ("x^2+1", "(x-1)(x+1)"),
])
def test_near_misses_fail(pred: str, gold: str) -> None:
    assert check(pred, gold) is Verdict.WRONG


@pytest.mark.parametrize(("pred", "gold"), [("12", "12"), ("1,000", "1000"), ("\\frac{1}{2}", "0.5"), ("-2,1", "1,-2")])
def test_common_cases_take_the_fast_path(pred: str, gold: str) -> None:
    assert fast_path(pred, gold) is Verdict.CORRECT


@pytest.mark.parametrize(("pred", "gold", "verdict"), [
    ("", "5", Verdict.UNPARSEABLE), ("5", "", Verdict.UNPARSEABLE), (None, "5", Verdict.UNPARSEABLE),
    ("42", 42, Verdict.CORRECT), ("27", 27.0, Verdict.CORRECT), ("1", True, Verdict.UNPARSEABLE),
    (["5"], "5", Verdict.UNPARSEABLE),
    ("\\frac{1}{2", "5", Verdict.UNPARSEABLE), ("hello world", "5", Verdict.WRONG), ("2 3", "6", Verdict.UNPARSEABLE),
])
def test_bad_input_never_raises(pred, gold, verdict: Verdict) -> None:
    assert check(pred, gold) is verdict


@pytest.mark.parametrize(("text", "answer"), [
    ("so \\boxed{\\frac{1}{2}} and finally \\boxed{\\frac{\\sqrt{3}}{2}}.", "\\frac{\\sqrt{3}}{2}"),
    ("\\boxed{\\{1, 2\\}}", "\\{1, 2\\}"),
    ("<think>maybe 3</think><answer>The value is $7$.</answer>", "7"),
    ("<answer>\\frac{1}{2}</answer>", "\\frac{1}{2}"),
    ("x = 5", "x = 5"),
    ("We get 3 apples, so 12 in total.\n#### 12", "12"),
    ("Thus the final answer is $\\frac{3}{4}$.", "\\frac{3}{4}"),
    ("After simplifying we find 14 and then add 3 to get 17 apples", "17"),
    ("**Answer:** 12", "12"),
    ("The final answer is: 5", "5"),
    ("\\boxed{unclosed", None),
    ("", None),
    ("No answer here at all, sorry about that", None),
    ("The triangle is isosceles, so the answer is isosceles", "isosceles"),  # not the "is" of "isosceles"
    ("The answer is:\n\n42", "42"),
    ("Answer: 5\nChecking again, the final answer is\n", "5"),  # a dangling later phrase is not an answer
    ("so the final answer is", None),  # truncated: the phrase itself is not an answer
    ("Compute 6*7. The answer is", None),  # ... not even when a number came before it
    ("Compute 6*7. The answer is ", None),
    ("We first get $1$ and then we get $$2$$ and then finally we get \\(3\\) then \\[4\\]", "4"),
    ("We paid $5 and then $6, so we call it $x$ in the end", "x"),  # spans pair left to right
    ("<answer>1</answer> no: <answer>2</answer>", "2"),
    ("<answer>1</answer> no: <answer>2", "1"),  # the second tag never closes
])
def test_extract_answer(text: str, answer: str | None) -> None:
    assert extract_answer(text) == answer


def test_env_style_call_on_full_model_text() -> None:
    text = "Let me compute. 3 + 4 = 7, so the answer is \\boxed{7}."
    assert check(extract_answer(text) or text, "7") is Verdict.CORRECT


def test_data_golds_check_against_themselves(data_dir: Path) -> None:
    golds = [json.loads(line)["answer"] for line in (data_dir / "math500.jsonl").read_text().splitlines()]
    verdicts = check_many([(g, g) for g in golds])
    assert all(v is Verdict.CORRECT for v in verdicts)
    boxed = check_many([(f"The answer is $\\boxed{{{g}}}$.", g) for g in golds[:100]])
    assert all(v is Verdict.CORRECT for v in boxed)


@pytest.mark.parametrize(("pred", "gold", "same"), [
    ("y = 2x + 4", "y = 2x + 3", False), ("6r^2-4r-25", "6r^2-4r-24", False), ("(x+1)^2", "x^2+2x+1", True),
    ("\\sqrt{8}", "2\\sqrt{2}", True), ("\\frac{\\cos x}{\\sin x}", "\\cot x", True), ("\\pi", "3.14", False),
    ("2x - y + 3 = 0", "y = 2x + 3", True),
    ("\\begin{pmatrix} \\sqrt{2} \\\\ 1 \\end{pmatrix}", "\\begin{pmatrix} \\sqrt{2} \\\\ 2 \\end{pmatrix}", False),
])
def test_sympy_path_decides_what_our_parser_reads(pred: str, gold: str, same: bool,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Forms our parser reads are decided by our sympy rules, never by the math-verify fallback."""
    from corl_gym.verify import symbolic
    from corl_gym.verify.norm import normalize

    def no_fallback(*args: object) -> str:
        raise AssertionError("fell back to math-verify")

    monkeypatch.setattr(symbolic, "_math_verify", no_fallback)
    expected = "CORRECT" if same else "WRONG"
    assert symbolic.symbolic_verdict(normalize(pred), normalize(gold)) == expected


def test_extract_answer_remembers_the_replies_of_thousands_of_problems():
    # A benchmark over a dataset of thousands of problems meets each problem's replies again only after all
    # the others: the answers of that many short texts stay remembered (a lookup, not a new extraction).
    from corl_gym.verify import norm

    texts = [f"[model] Step by step, problem {i}.\nThe final answer is $\\boxed{{{i}}}$." for i in range(20_000)]
    assert [extract_answer(text) for text in texts[:3]] == ["0", "1", "2"]
    for text in texts[3:]:
        extract_answer(text)
    misses = norm._remembered_answer.cache_info().misses
    assert extract_answer(texts[0]) == "0"
    assert norm._remembered_answer.cache_info().misses == misses  # still remembered
    long_text = "x" * norm.MAX_REMEMBERED_CHARS + " \\boxed{7}"
    assert extract_answer(long_text) == "7"  # longer texts are worked out every time, with the same answer
    assert norm._remembered_answer.cache_info().misses == misses

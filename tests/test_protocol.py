import pytest

from corl_gym.protocol import (
    INVALID_REASONS,
    AnswerAction,
    CallAction,
    InvalidAction,
    RosterEntry,
    corrective_message,
    parse_action,
    system_prompt,
)

EXPERTS = ["gpt-4.1-nano", "gpt-4.1", "o3"]


@pytest.mark.parametrize(
    "text, expected",
    [
        ('<call expert="o3">What is 2+2?</call>', CallAction("o3", "What is 2+2?")),
        ("<call expert='gpt-4.1'> x </call>", CallAction("gpt-4.1", "x")),
        ('<call  expert = "o3" >q</call>', CallAction("o3", "q")),
        ("<answer>\\boxed{4}</answer>", AnswerAction("\\boxed{4}")),
        ("<think>maybe <answer>1</answer></think><answer>2</answer>", AnswerAction("2")),
        ('<think>plan</think>\n<call expert="o3">q</call> trailing <answer>9</answer>', CallAction("o3", "q")),
        ('<answer>5</answer><call expert="o3">q</call>', AnswerAction("5")),
        ('<call expert="o3">a</call><call expert="gpt-4.1">b</call>', CallAction("o3", "a")),
        ("<answer>1<answer>2</answer>", AnswerAction("2")),
    ],
)
def test_valid_actions_and_first_complete_action_wins(text, expected):
    assert parse_action(text, EXPERTS) == expected


@pytest.mark.parametrize(
    "text, reason",
    [
        ("", "no_action"),
        ("just some text", "no_action"),
        ("<answer>5", "unclosed_tag"),
        ('<call expert="o3">q', "unclosed_tag"),
        ("<think>forever", "unclosed_tag"),
        ("5</answer>", "malformed_tag"),
        ("q</call>", "malformed_tag"),
        ("<call>q</call>", "malformed_tag"),
        ('<call expert=o3>q</call>', "malformed_tag"),
        ('<call expert="gpt-5">q</call>', "unknown_expert"),
        ('<call expert="o3">   </call>', "empty_query"),
        ("<answer>  </answer>", "empty_answer"),
    ],
)
def test_invalid_actions_have_reasons(text, reason):
    action = parse_action(text, EXPERTS)
    assert isinstance(action, InvalidAction)
    assert action.reason == reason
    assert reason in INVALID_REASONS


def test_any_name_accepted_without_roster():
    assert parse_action('<call expert="anyone">q</call>') == CallAction("anyone", "q")


def test_non_string_and_huge_inputs_do_not_raise():
    assert isinstance(parse_action(None, EXPERTS), InvalidAction)  # type: ignore[arg-type]
    assert isinstance(parse_action(b"<answer>1</answer>", EXPERTS), InvalidAction)  # type: ignore[arg-type]
    big = "<call expert=\"" + "a" * 100_000 + "\">q</call>"
    assert parse_action(big, EXPERTS).reason == "malformed_tag"
    nested = "<answer>" * 50_000 + "x" + "</answer>" * 50_000
    assert parse_action(nested, EXPERTS) == AnswerAction("x")
    assert parse_action("\u202e\U0001F600<answer>\u00e9</answer>", EXPERTS) == AnswerAction("\u00e9")


def test_corrective_message_names_the_grammar_and_experts():
    message = corrective_message(InvalidAction("unknown_expert", "'gpt-5'"), EXPERTS)
    assert "does not exist" in message and "gpt-4.1-nano, gpt-4.1, o3" in message and "<answer>" in message


def test_system_prompt_has_roster_prices_budget_and_grammar():
    roster = [RosterEntry("o3", "strongest reasoning model", 2.0, 8.0)]
    prompt = system_prompt(roster, "low", 0.001)
    assert "o3: strongest reasoning model ($2 per 1M input tokens, $8 per 1M output tokens)" in prompt
    assert "Budget mode: low" in prompt and "$0.0010" in prompt
    assert '<call expert="NAME">' in prompt and "<answer>" in prompt


def test_the_full_prompt_shows_no_filled_answer_a_controller_could_copy():
    roster = [RosterEntry(n, "an expert", 2.0, 8.0) for n in EXPERTS]
    prompt = system_prompt(roster, "high", 0.05)
    # a controller writing `<answer>\boxed{` after a reply copies what followed the latest earlier match
    assert "\\boxed{" not in prompt and "<answer>\\" not in prompt
    assert "<answer>" in prompt and '<call expert="NAME">' in prompt and "Example" in prompt


def test_the_compact_prompt_has_budget_threshold_names_and_prices_and_no_example():
    from corl_gym.protocol import compact_response, compact_system_prompt

    roster = [RosterEntry("gpt-4.1-nano", "cheap", 0.1, 0.4), RosterEntry("o3", "strong", 2.0, 8.0)]
    prompt = compact_system_prompt(roster, "medium", 0.01)
    assert "Budget medium: $0.0100" in prompt and "gpt-4.1-nano 0.1/0.4" in prompt and "o3 2/8" in prompt
    assert "<" not in prompt and "boxed" not in prompt and "xample" not in prompt
    assert len(prompt) * 4 < len(system_prompt(roster, "medium", 0.01))
    block = compact_response("o3", "The answer is $\\boxed{7}$.</response>", 0.004, 0.01)
    assert block == ('\n<response expert="o3">The answer is $\\boxed{7}$.&lt;/response></response>\n'
                     '<budget spent="$0.004000" left="$0.006000"/>\n')
    assert 'left="$0.000000"' in compact_response("o3", "x", 0.02, 0.01)  # never negative


def test_the_compact_opening_ends_the_problem_with_the_budget_tag():
    from corl_gym.protocol import compact_opening

    assert compact_opening("What is 2+2?", "low", 0.001) == 'What is 2+2?\n<budget mode="low" left="$0.001000"/>'
    assert compact_opening("x", "custom", -1.0).endswith('left="$0.000000"/>')  # never negative

"""The CEL subset parser for KFP trigger conditions."""

import pytest

from kubesage.errors import UnsupportedFeatureError
from kubesage.runners.sagemaker import cel

P = "inputs.parameter_values['pipelinechannel--{}']"


def test_comparison_with_casts_dropped() -> None:
    expr = cel.parse_condition(f"int({P.format('n')}) >= 3", task="t")
    assert expr == cel.Compare(">=", cel.Ref("pipelinechannel--n"), cel.Literal(3))


def test_else_elif_shapes() -> None:
    text = f"!({P.format('a')} == 'x') && {P.format('b')} < 2.5"
    expr = cel.parse_condition(text, task="t")
    assert expr == cel.And(
        (
            cel.Not(cel.Compare("==", cel.Ref("pipelinechannel--a"), cel.Literal("x"))),
            cel.Compare("<", cel.Ref("pipelinechannel--b"), cel.Literal(2.5)),
        )
    )


def test_or_binds_looser_than_and() -> None:
    expr = cel.parse_condition(f"{P.format('a')} == true || {P.format('b')} != 1 && {P.format('c')} > 0", task="t")
    assert isinstance(expr, cel.Or)
    assert isinstance(expr.operands[1], cel.And)
    assert expr.operands[0] == cel.Compare("==", cel.Ref("pipelinechannel--a"), cel.Literal(True))


@pytest.mark.parametrize(
    "text",
    [f"{P.format('a')} in [1, 2]", f"size({P.format('a')}) > 1", f"{P.format('a')} + 1 > 2", f"({P.format('a')} > 1"],
)
def test_outside_the_subset_names_the_task(text: str) -> None:
    with pytest.raises(UnsupportedFeatureError, match="task 'gate': condition"):
        cel.parse_condition(text, task="gate")


def test_non_ascii_and_escaped_string_literals_keep_their_text() -> None:
    """The hand-written parser decoded literals with unicode_escape, turning 'Zürich' into 'ZÃ¼rich'
    (issue 10, item 16): the condition then compared against the wrong text and took the wrong branch."""
    expr = cel.parse_condition(f"{P.format('city')} == 'Zürich'", task="t")
    assert expr == cel.Compare("==", cel.Ref("pipelinechannel--city"), cel.Literal("Zürich"))
    escaped = cel.parse_condition(f"{P.format('s')} == 'tab\\there \\u00e9 \\'q\\''", task="t")
    assert isinstance(escaped, cel.Compare)
    assert escaped.right == cel.Literal("tab\there é 'q'")
    raw = cel.parse_condition(f"{P.format('s')} == r'a\\nb'", task="t")
    assert isinstance(raw, cel.Compare)
    assert raw.right == cel.Literal("a\\nb")


def test_invalid_cel_is_one_line_naming_the_task() -> None:
    with pytest.raises(UnsupportedFeatureError, match=r"^task 'gate': condition .* is not valid CEL \(syntax error"):
        cel.parse_condition(f"{P.format('a')} == = 1", task="gate")

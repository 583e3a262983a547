# Nested `with` blocks mirror how KFP users write nested groups.
# ruff: noqa: SIM117
"""dsl.If / Elif / Else, nested conditions, non-ASCII literals, dsl.OneOf."""

from kfp import dsl

from tests.corpus.sagemaker._components import echo, fit, flip, make_data, say, total
from tests.corpus.sagemaker._expect import Case, Refused, Translates


@dsl.pipeline(name="if-on-output")
def if_on_output(seed: int = 2) -> None:
    coin = flip(seed=seed)
    with dsl.If(coin.output == "heads"):
        say(text="heads won")


@dsl.pipeline(name="if-elif-else")
def if_elif_else(seed: int = 2) -> None:
    coin = flip(seed=seed)
    with dsl.If(coin.output == "heads"):
        say(text="heads")
    with dsl.Elif(coin.output == "tails"):
        say(text="tails")
    with dsl.Else():
        say(text="edge")


@dsl.pipeline(name="nested-if-on-parameters")
def nested_if_on_parameters(n: int = 3, ratio: float = 0.5, flag: bool = True) -> None:
    with dsl.If(n > 2):
        with dsl.If(ratio <= 0.75):
            with dsl.If(flag == True):  # noqa: E712
                echo(x=n)


@dsl.pipeline(name="non-ascii-condition")
def non_ascii_condition(city: str = "Zürich") -> None:
    with dsl.If(city == "Zürich"):
        say(text="grüezi")
    with dsl.Else():
        say(text="hello")


@dsl.pipeline(name="one-of-parameter")
def one_of_parameter(seed: int = 1) -> None:
    coin = flip(seed=seed)
    with dsl.If(coin.output == "heads"):
        a = say(text="a")
    with dsl.Else():
        b = say(text="b")
    say(text=dsl.OneOf(a.output, b.output))


@dsl.pipeline(name="one-of-artifact")
def one_of_artifact(seed: int = 1) -> None:
    coin = flip(seed=seed)
    with dsl.If(coin.output == "heads"):
        small = make_data(n=2)
    with dsl.Else():
        big = make_data(n=20)
    fit(data=dsl.OneOf(small.outputs["data"], big.outputs["data"]))


@dsl.pipeline(name="one-of-three-branches")
def one_of_three_branches(n: int = 1) -> None:
    with dsl.If(n == 1):
        a = echo(x=10)
    with dsl.Elif(n == 2):
        b = echo(x=20)
    with dsl.Else():
        c = echo(x=30)
    echo(x=dsl.OneOf(a.output, b.output, c.output))


@dsl.pipeline
def pick(seed: int) -> str:
    coin = flip(seed=seed)
    with dsl.If(coin.output == "heads"):
        a = say(text="a")
    with dsl.Else():
        b = say(text="b")
    return dsl.OneOf(a.output, b.output)


@dsl.pipeline(name="one-of-from-sub-pipeline")
def one_of_from_sub_pipeline(seed: int = 2) -> None:
    picked = pick(seed=seed)
    say(text=picked.output)


@dsl.pipeline(name="one-of-read-downstream")
def one_of_read_downstream(seed: int = 1) -> None:
    coin = flip(seed=seed)
    with dsl.If(coin.output == "heads"):
        a = say(text="a")
    with dsl.Else():
        b = say(text="b")
    chosen = say(text=dsl.OneOf(a.output, b.output))
    say(text=chosen.output)


@dsl.pipeline(name="one-of-in-another-condition")
def one_of_in_another_condition(seed: int = 1, go: bool = True) -> None:
    coin = flip(seed=seed)
    with dsl.If(coin.output == "heads"):
        a = say(text="a")
    with dsl.Else():
        b = say(text="b")
    with dsl.If(go == True):  # noqa: E712
        say(text=dsl.OneOf(a.output, b.output))


@dsl.pipeline(name="condition-on-one-of-reader")
def condition_on_one_of_reader(seed: int = 1) -> None:
    coin = flip(seed=seed)
    with dsl.If(coin.output == "heads"):
        a = say(text="a")
    with dsl.Else():
        b = say(text="b")
    chosen = say(text=dsl.OneOf(a.output, b.output))
    with dsl.If(chosen.output == "a"):
        echo(x=1)


@dsl.pipeline(name="condition-then-loop")
def condition_then_loop(n: int = 3) -> None:
    with dsl.If(n > 1):
        with dsl.ParallelFor([1, 2]) as item:
            doubled = echo(x=item)
        total(xs=dsl.Collected(doubled.output))


CORPUS: list[Case] = [
    (if_on_output, Translates("flip", "condition-1", "say", report=("ConditionStep 'condition-1'",))),
    (if_elif_else, Translates("flip", "condition-2", "condition-3", "condition-4", "say", "say-2", "say-3")),
    (nested_if_on_parameters, Translates("condition-1", "condition-2", "condition-3", "echo")),
    (non_ascii_condition, Translates("condition-2", "condition-3", "say", "say-2")),
    (
        one_of_parameter,
        Translates(
            "flip",
            "condition-2",
            "condition-3",
            "say",
            "say-2",
            "say-3-condition-2",
            "say-3-condition-3",
            report=("read by 'say-3' -> one copy per branch (say-3-condition-2, say-3-condition-3)",),
        ),
    ),
    (
        one_of_artifact,
        Translates(
            "flip", "condition-2", "condition-3", "make-data", "make-data-2", "fit-condition-2", "fit-condition-3"
        ),
    ),
    (
        one_of_three_branches,
        Translates(
            "condition-2",
            "condition-3",
            "condition-4",
            "echo",
            "echo-2",
            "echo-3",
            "echo-4-condition-2",
            "echo-4-condition-3",
            "echo-4-condition-4",
        ),
    ),
    (
        one_of_from_sub_pipeline,
        Translates(
            "pick-flip",
            "pick-condition-2",
            "pick-condition-3",
            "pick-say",
            "pick-say-2",
            "say-pick-condition-2",
            "say-pick-condition-3",
        ),
    ),
    (
        one_of_read_downstream,
        Refused(r"task 'say-4': input 'text' reads 'say-3', which reads a dsl.OneOf.*move this task into the branches"),
    ),
    (condition_on_one_of_reader, Refused(r"task 'condition-4': condition on 'say-3', which reads a dsl.OneOf")),
    (
        one_of_in_another_condition,
        Refused(r"task 'condition-4': dsl.OneOf over the branches of 'condition-branches-1' passed into a group"),
    ),
    (
        condition_then_loop,
        Translates("condition-1", "for-loop-3-0-echo", "for-loop-3-1-echo", "total", report=("unrolled",)),
    ),
]

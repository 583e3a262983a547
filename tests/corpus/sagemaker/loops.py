# Nested `with` blocks mirror how KFP users write nested groups.
# ruff: noqa: SIM117
"""dsl.ParallelFor: literal lists (unrolled), dict items, nested loops, dsl.Collected; runtime lists."""

from kfp import dsl

from tests.corpus.sagemaker._components import count_all, echo, every_type, make_data, numbers, say, total
from tests.corpus.sagemaker._expect import Case, Refused, Translates


@dsl.pipeline(name="loop-collected")
def loop_collected() -> None:
    with dsl.ParallelFor([1, 2, 3]) as item:
        doubled = echo(x=item)
    total(xs=dsl.Collected(doubled.output))


@dsl.pipeline(name="loop-dict-items")
def loop_dict_items() -> None:
    with dsl.ParallelFor([{"who": "a", "greeting": "hi"}, {"who": "b", "greeting": "hé"}]) as item:
        say(text=item.who)
        say(text=item.greeting)


@dsl.pipeline(name="nested-loops")
def nested_loops() -> None:
    with dsl.ParallelFor([1, 2]) as outer:
        with dsl.ParallelFor(["x", "y"]) as inner:
            every_type(s=inner, i=outer, f=0.0, b=True, items=[], config={})


@dsl.pipeline(name="loop-parallelism")
def loop_parallelism() -> None:
    with dsl.ParallelFor(["a", "b", "c"], parallelism=2) as item:
        say(text=item)


@dsl.pipeline(name="loop-over-parameter")
def loop_over_parameter(items: list = [1, 2]) -> None:  # noqa: B006
    with dsl.ParallelFor(items) as item:
        echo(x=item)


@dsl.pipeline(name="loop-over-task-output")
def loop_over_task_output() -> None:
    made = numbers(n=3)
    with dsl.ParallelFor(made.output) as item:
        echo(x=item)


@dsl.pipeline(name="loop-collected-artifacts")
def loop_collected_artifacts() -> None:
    with dsl.ParallelFor([1, 2]) as n:
        made = make_data(n=n)
    count_all(datasets=dsl.Collected(made.outputs["data"]))


CORPUS: list[Case] = [
    (
        loop_collected,
        Translates("for-loop-2-0-echo", "for-loop-2-1-echo", "for-loop-2-2-echo", "total", report=("dsl.Collected",)),
    ),
    (loop_dict_items, Translates("for-loop-2-0-say", "for-loop-2-0-say-2", "for-loop-2-1-say", "for-loop-2-1-say-2")),
    (
        nested_loops,
        Translates(
            "for-loop-2-0-for-loop-4-0-every-type",
            "for-loop-2-0-for-loop-4-1-every-type",
            "for-loop-2-1-for-loop-4-0-every-type",
            "for-loop-2-1-for-loop-4-1-every-type",
        ),
    ),
    (
        loop_parallelism,
        Translates("for-loop-2-0-say", "for-loop-2-1-say", "for-loop-2-2-say", report=("parallelism=2 not carried",)),
    ),
    (loop_over_parameter, Refused(r"task 'for-loop-1': dsl.ParallelFor over a list known only at run time")),
    (loop_over_task_output, Refused(r"task 'for-loop-1': dsl.ParallelFor over a list known only at run time")),
    (loop_collected_artifacts, Refused(r"dsl.Collected of artifacts|artifact list input")),
]

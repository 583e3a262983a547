# Nested `with` blocks mirror how KFP users write nested groups.
# ruff: noqa: SIM117
"""dsl.ParallelFor: literal lists (unrolled), dict items, nested loops, dsl.Collected; runtime lists (fan-out)."""

from kfp import dsl
from kfp.dsl import Dataset

from tests.corpus.sagemaker._components import count_all, count_lines, echo, every_type, make_data, numbers, say, total
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


@dsl.pipeline(name="runtime-loop-chain")
def runtime_loop_chain(sizes: list = [1, 2], scale: int = 3) -> None:  # noqa: B006
    with dsl.ParallelFor(sizes, parallelism=4) as n:
        made = make_data(n=n)
        counted = count_lines(data=made.outputs["data"])
        echo(x=scale).after(counted)
    total(xs=dsl.Collected(counted.output))


@dsl.pipeline(name="runtime-loop-dict-items")
def runtime_loop_dict_items(pairs: list = [{"who": "a"}, {"who": "b"}]) -> None:  # noqa: B006
    with dsl.ParallelFor(pairs) as pair:
        say(text=pair.who)


@dsl.pipeline(name="runtime-loop-with-condition")
def runtime_loop_with_condition(items: list = [1, 2]) -> None:  # noqa: B006
    with dsl.ParallelFor(items) as item:
        with dsl.If(item == 1):
            echo(x=item)


@dsl.pipeline(name="runtime-loop-nested")
def runtime_loop_nested(items: list = [1, 2]) -> None:  # noqa: B006
    with dsl.ParallelFor(items) as item:
        with dsl.ParallelFor([1, 2]) as inner:
            every_type(s="x", i=item, f=0.0, b=True, items=[inner], config={})


@dsl.pipeline(name="runtime-loop-if-elif-else-one-of")
def runtime_loop_if_elif_else_one_of(items: list = [1, 5, 9], low: int = 3) -> None:  # noqa: B006
    with dsl.ParallelFor(items) as item:
        seen = echo(x=item)
        with dsl.If(seen.output < low):
            small = say(text="small")
        with dsl.Elif(seen.output == 5):
            five = say(text="five")
        with dsl.Else():
            large = say(text="large")
        told = say(text=dsl.OneOf(small.output, five.output, large.output))
    total(xs=dsl.Collected(told.output))


@dsl.pipeline
def echo_twice(x: int) -> int:
    first = echo(x=x)
    return echo(x=first.output).output


@dsl.pipeline(name="runtime-loop-sub-pipeline")
def runtime_loop_sub_pipeline() -> None:
    made = numbers(n=3)
    with dsl.ParallelFor(made.output) as item:
        twice = echo_twice(x=item)
    total(xs=dsl.Collected(twice.output))


@dsl.pipeline(name="runtime-loop-nested-over-item-field")
def runtime_loop_nested_over_item_field(rows: list = [{"xs": [1, 2]}, {"xs": [3]}]) -> None:  # noqa: B006
    with dsl.ParallelFor(rows) as row:
        with dsl.ParallelFor(row.xs) as x:
            echo(x=x)


@dsl.pipeline(name="literal-loop-collects-nested-loop")
def literal_loop_collects_nested_loop() -> None:
    with dsl.ParallelFor([1, 2]) as outer:
        with dsl.ParallelFor([10, 20]) as inner:
            summed = every_type(s="x", i=outer, f=0.0, b=True, items=[inner], config={})
    total(xs=dsl.Collected(summed.output))


@dsl.pipeline(name="runtime-loop-nested-collected-artifacts")
def runtime_loop_nested_collected_artifacts(sizes: list = [1, 2]) -> None:  # noqa: B006
    with dsl.ParallelFor(sizes) as n:
        with dsl.ParallelFor([1, 2]) as m:
            with dsl.If(m >= 1):
                made = make_data(n=n)
    count_all(datasets=dsl.Collected(made.outputs["data"]))


@dsl.pipeline(name="runtime-loop-importer")
def runtime_loop_importer(items: list = [1, 2]) -> None:  # noqa: B006
    with dsl.ParallelFor(items) as item:
        echo(x=item)
        dsl.importer(artifact_uri="s3://bucket/key", artifact_class=Dataset)


@dsl.pipeline(name="runtime-loop-reads-upstream-artifact")
def runtime_loop_reads_upstream_artifact(n: int = 4) -> None:
    made = make_data(n=n)
    listed = numbers(n=n)
    with dsl.ParallelFor(listed.output) as item:
        count_lines(data=made.outputs["data"])
        echo(x=item)


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
    (loop_over_parameter, Translates("for-loop-1", report=("the fan-out runs inside one job",))),
    (
        loop_over_task_output,
        Translates("numbers", "for-loop-1", report=("input 'kubesage-items' <- JsonGet(numbers.parameters.Output)",)),
    ),
    (loop_collected_artifacts, Translates("for-loop-2", "count-all", report=("gathers ['make-data-data/<i>/']",))),
    (
        runtime_loop_chain,
        Translates(
            "for-loop-1",
            "total",
            report=("body [make-data, count-lines, echo]", "parallelism=4 -> at most 4 items at once"),
        ),
    ),
    (runtime_loop_dict_items, Translates("for-loop-1", report=("as many items at once as the instance has cores",))),
    (
        runtime_loop_with_condition,
        Translates("for-loop-1", report=("condition-2 (dsl.If ", "conditions are evaluated per item")),
    ),
    (
        runtime_loop_nested,
        Translates("for-loop-1", report=("for-loop-3 (dsl.ParallelFor over [1, 2], its iterations in turn)",)),
    ),
    (
        runtime_loop_if_elif_else_one_of,
        Translates(
            "for-loop-1",
            "total",
            report=("condition-branches-2 (inlined) [condition-3 (dsl.If ", "gathers ['say_4__Output']"),
        ),
    ),
    (runtime_loop_sub_pipeline, Translates("numbers", "for-loop-1", "total", report=("echo-twice (inlined) [echo",))),
    (
        runtime_loop_nested_over_item_field,
        Translates("for-loop-1", report=("dsl.ParallelFor over input 'pipelinechannel--rows-loop-item-subvar-xs'",)),
    ),
    (
        literal_loop_collects_nested_loop,
        Translates("for-loop-2", "total", report=("over a literal list (its outputs are collected)",)),
    ),
    (
        runtime_loop_nested_collected_artifacts,
        Translates("for-loop-1", "count-all", report=("gathers ['for-loop-3-pipelinechannel-make-data-data/<i>/']",)),
    ),
    (runtime_loop_importer, Refused(r"task 'for-loop-1': a runtime dsl.ParallelFor whose body holds 'importer'")),
    (runtime_loop_reads_upstream_artifact, Translates("make-data", "numbers", "for-loop-1")),
]

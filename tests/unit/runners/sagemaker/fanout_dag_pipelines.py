"""Runtime loops whose body is a DAG (dsl.If/Elif/Else, dsl.OneOf, a nested loop, a sub-pipeline),
run by the SageMaker fan-out job in-process (test_fanout_dag.py) and by kfp.local for the expected values
(tests/integration/test_sagemaker_fanout_kfp_local.py)."""

# Nested `with` blocks mirror how KFP users write nested groups.
# ruff: noqa: SIM117

from kfp import dsl


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def double(x: int) -> int:
    return 2 * x


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def add(a: int, b: int) -> int:
    return a + b


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def tag(text: str, x: int) -> str:
    return f"{text}{x}"


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def summary(doubled: list, sums: list, tags: list) -> str:
    import json

    # kfp.local hands collected numbers over as floats, KFP's backend as JSON numbers: compare as ints
    return json.dumps(
        {"doubled": [int(x) for x in doubled], "sums": [[int(v) for v in row] for row in sums], "tags": tags}
    )


@dsl.pipeline
def plus_ten(x: int) -> int:
    return add(a=x, b=10).output


@dsl.pipeline(name="fan-out-dag")
def fan_out_dag(items: list[int] = [1, 2, 3]) -> str:  # noqa: B006
    with dsl.ParallelFor(items, parallelism=2) as n:
        doubled = double(x=n)
        with dsl.If(doubled.output > 2):
            big = tag(text="big", x=n)
        with dsl.Else():
            small = tag(text="small", x=n)
        chosen = tag(text=dsl.OneOf(big.output, small.output), x=0)
        with dsl.ParallelFor([10, 20]) as j:
            summed = add(a=n, b=j)
        with dsl.If(n == 3):
            plus_ten(x=n)
    return summary(
        doubled=dsl.Collected(doubled.output), sums=dsl.Collected(summed.output), tags=dsl.Collected(chosen.output)
    ).output


@dsl.pipeline(name="fan-out-collects-a-skipped-task")
def collects_skipped(items: list[int] = [1, 2, 3]) -> None:  # noqa: B006
    with dsl.ParallelFor(items) as n:
        with dsl.If(n >= 2):
            doubled = double(x=n)
    summary(doubled=dsl.Collected(doubled.output), sums=[], tags=[])


@dsl.pipeline(name="fan-out-dag-inner-item")
def fan_out_dag_inner_item(items: list[int] = [1, 2, 3]) -> str:  # noqa: B006
    """`fan_out_dag` whose nested loop reads its own item only: kfp.local 2.17 hands a nested loop's
    tasks the inner item for every input named `*-loop-item`, the outer item too
    (`create_parameter_loop_iteration_task_spec`), so only this shape has kfp.local as a reference."""
    with dsl.ParallelFor(items, parallelism=2) as n:
        doubled = double(x=n)
        with dsl.If(doubled.output > 2):
            big = tag(text="big", x=n)
        with dsl.Else():
            small = tag(text="small", x=n)
        chosen = tag(text=dsl.OneOf(big.output, small.output), x=0)
        with dsl.ParallelFor([10, 20]) as j:
            summed = add(a=j, b=j)
        with dsl.If(n == 3):
            plus_ten(x=n)
    return summary(
        doubled=dsl.Collected(doubled.output), sums=dsl.Collected(summed.output), tags=dsl.Collected(chosen.output)
    ).output

# Component bodies ship to the task as source text; they stay with open on purpose.
# ruff: noqa: PTH123
"""Pipelines the SageMaker local-mode round-two test runs, and kfp.local runs for the expected values.

`runtime_fan_out` loops over a list a task computes (a runtime dsl.ParallelFor, compiled into one
fan-out step), gathers a parameter and an artifact per item with dsl.Collected; `one_of` reads
whichever dsl.If/Elif/Else branch ran through dsl.OneOf (compiled into one copy per branch); `exit_handler`
runs its exit task after a task inside dsl.ExitHandler failed.
"""

from kfp import dsl
from kfp.dsl import Dataset, Input, Output


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def sizes(n: int) -> list:
    return [i + 1 for i in range(n)]


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def square(x: int) -> int:
    return x * x


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def write_rows(n: int, data: Output[Dataset]) -> None:
    with open(data.path, "w") as fh:
        fh.write("".join(f"{i}\n" for i in range(n)))


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def add_up(xs: list) -> int:
    return int(sum(xs))  # kfp.local hands collected numbers over as floats


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def count_rows(datasets: Input[list[Dataset]]) -> int:
    return sum(len(open(d.path).read().splitlines()) for d in datasets)


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def combine(total: int, rows: int) -> str:
    return f"total={total} rows={rows}"


@dsl.pipeline(name="runtime-fan-out")
def runtime_fan_out(n: int = 3) -> str:
    made = sizes(n=n)
    with dsl.ParallelFor(made.output, parallelism=2) as x:
        squared = square(x=x)
        rows = write_rows(n=squared.output)
    total = add_up(xs=dsl.Collected(squared.output))
    counted = count_rows(datasets=dsl.Collected(rows.outputs["data"]))
    return combine(total=total.output, rows=counted.output).output


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def grade(score: int) -> str:
    return "high" if score >= 80 else "mid" if score >= 50 else "low"


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def label(text: str) -> str:
    return f"grade:{text}"


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def shout(text: str) -> str:
    return text.upper()


@dsl.pipeline(name="one-of")
def one_of(score: int = 65) -> str:
    graded = grade(score=score)
    with dsl.If(graded.output == "high"):
        high = label(text="A")
    with dsl.Elif(graded.output == "mid"):
        mid = label(text="B")
    with dsl.Else():
        low = label(text="C")
    return shout(text=dsl.OneOf(high.output, mid.output, low.output)).output


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def maybe_fail(fail: bool) -> int:
    if fail:
        raise RuntimeError("failing on purpose")
    return 7


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def plus_one(x: int) -> int:
    return x + 1


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def cleanup(status: dsl.PipelineTaskFinalStatus) -> str:
    # KFP hands the exit task how the handler's tasks ended; on SageMaker the shim assembles it.
    return f"cleaned after {status.state}: {status.error_message or 'no error'} ({status.pipeline_task_name})"


@dsl.pipeline(name="exit-handler")
def exit_handler(fail: bool = True) -> None:
    with dsl.ExitHandler(cleanup()):
        first = maybe_fail(fail=fail)
        plus_one(x=first.output)

"""Toy KFP pipeline: a literal ParallelFor with dsl.Collected, then a sub-pipeline, then a task.

Run for real in SageMaker local mode (the loop unrolled, the sub-pipeline inlined) and on KFP's own
local runner, which must agree: squares of 1, 2, 3 -> 14 -> inner(14) = 14^2 + 14 = 210 -> + offset.
"""

from typing import List  # noqa: UP035  (KFP reads the annotation from the component's source)

from kfp import dsl


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def square(x: int) -> int:
    return x * x


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def total(values: List[int]) -> int:  # noqa: UP006
    # kfp.local hands collected integers over as JSON numbers (floats); the sum is whole either way.
    return int(sum(values))


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def add(a: int, b: int) -> int:
    return a + b


@dsl.pipeline(name="inner")
def inner(x: int) -> int:
    return add(a=square(x=x).output, b=x).output


@dsl.pipeline(name="kubesage-toy-nested-loop")
def toy_nested_loop(offset: int = 1) -> int:
    with dsl.ParallelFor([1, 2, 3]) as item:
        squared = square(x=item)
    summed = total(values=dsl.Collected(squared.output))
    nested = inner(x=summed.output)
    return add(a=nested.output, b=offset).output

# Component bodies ship to the task as source text; they stay with os/open on purpose.
# ruff: noqa: PTH123, SIM115
"""Third toy KFP pipeline: what SageMaker's flat DAG gets by inlining. A sub-pipeline (with its own
dsl.If) used twice, a dsl.ParallelFor over a literal list unrolled with dsl.Collected, list and dict
parameters carried as JSON, an s3:// importer, and a condition on a non-ASCII string."""

from kfp import dsl
from kfp.dsl import Dataset, Input


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def scale(x: int, factor: int) -> int:
    return x * factor


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def add_all(xs: list, weights: dict) -> int:
    return sum(int(x) * int(weights.get(str(i), 1)) for i, x in enumerate(xs))


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def describe(total: int, city: str, data: Input[Dataset]) -> str:
    rows = len(open(data.path).read().splitlines())
    return f"{city}: {total} over {rows} rows"


@dsl.pipeline
def scaled_twice(x: int, factor: int) -> int:
    once = scale(x=x, factor=factor)
    with dsl.If(once.output > 0, name="positive"):
        scale(x=once.output, factor=factor)
    return once.output


@dsl.pipeline(name="kubesage-toy-nested")
def toy_nested(
    factor: int = 2,
    weights: dict = {"0": 1, "1": 10},  # noqa: B006
    city: str = "Zürich",
) -> None:
    first = scaled_twice(x=3, factor=factor)
    scaled_twice(x=first.output, factor=factor)
    with dsl.ParallelFor([1, 2, 3]) as item:
        part = scale(x=item, factor=factor)
    summed = add_all(xs=dsl.Collected(part.output), weights=weights)
    data = dsl.importer(artifact_uri="s3://kubesage-golden/toy/rows.csv", artifact_class=Dataset)
    with dsl.If(city == "Zürich", name="in-zurich"):
        describe(total=summed.output, city=city, data=data.output)

# Component bodies ship to the task as source text; they stay with os/open on purpose.
# ruff: noqa: PTH123, SIM115, UP006, UP035
"""The conformance pipelines: small, each covering several of the KFP features the SageMaker
compiler translates, so every runner can be checked to run the same tasks with the same values.

Every component records one MLflow step run named by a label that does not depend on the runner
(`alert`, `square-3`), with its value as a metric on that run and, prefixed by the label, on the
parent run: the set of step runs is the set of tasks that ran, the parent's metrics the final values.
The bodies import kubesage (installed wherever tasks run: this interpreter, the image).

- `sensor_alerts`: the issue's example. A CSV artifact between tasks, a NamedTuple output, dsl.If /
  Elif / Else on its fields, a condition nested in a branch, a condition on a single output, `.after()`.
- `loops_and_subpipelines`: a ParallelFor over a literal list with a condition on the loop item in its
  body, dsl.Collected into a list parameter, a dict and a list pipeline parameter, a sub-pipeline with
  its own dsl.If used twice, a bool output in a condition, `.after()` on a sub-pipeline.
"""

from typing import List, NamedTuple

from kfp import dsl
from kfp.dsl import Dataset, Input, Output

IMAGE = "kubesage/xgboost-daal4py:latest"


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def make_readings(count: int, readings: Output[Dataset]) -> None:
    """`count` readings 0, 0.1, ... 9.9, 0, ... as a one-column CSV (deterministic, no random source)."""
    from kubesage.tracking import step_run

    values = [(i % 100) / 10 for i in range(count)]
    with open(readings.path, "w") as out:
        out.write("value\n" + "".join(f"{v}\n" for v in values))
    with step_run("make-readings") as run:
        run.log_metrics({"rows": count})


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def summarize(readings: Input[Dataset]) -> NamedTuple("Summary", [("mean", float), ("n", int)]):
    from collections import namedtuple

    from kubesage.tracking import step_run

    values = [float(line) for line in open(readings.path).read().split()[1:]]
    mean = round(sum(values) / len(values), 6)
    with step_run("summarize") as run:
        run.log_metrics({"summarize.mean": mean, "summarize.n": len(values)}, also_parent=True)
    return namedtuple("Summary", ["mean", "n"])(mean, len(values))


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def alert(label: str, mean: float, n: int) -> str:
    from kubesage.tracking import step_run

    message = f"mean {mean:.3f} over {n} readings"
    with step_run(label) as run:
        run.log_metrics({f"{label}.mean": mean, f"{label}.n": n}, also_parent=True)
        run.set_tags({"message": message})
    return message


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def note(label: str, text: str) -> bool:
    """Records `text` on a step run `label`; True when it is not empty (a bool output to branch on)."""
    from kubesage.tracking import step_run

    with step_run(label) as run:
        run.log_metrics({f"{label}.chars": len(text)}, also_parent=True)
    return bool(text)


@dsl.pipeline(name="conformance-sensor-alerts")
def sensor_alerts(count: int = 300, threshold: float = 2.5, flood: int = 1000) -> None:
    readings = make_readings(count=count)
    summary = summarize(readings=readings.outputs["readings"])
    # The example: a plain dsl.If on a NamedTuple field, in the root DAG (kfp.local skipped it).
    with dsl.If(summary.outputs["mean"] > threshold, name="high"):
        raised = alert(label="alert", mean=summary.outputs["mean"], n=summary.outputs["n"])
        with dsl.If(summary.outputs["n"] >= 200, name="many"):
            note(label="many-readings", text=raised.output)
        with dsl.If(raised.output != "", name="said"):  # a condition on a single (str) output
            note(label="alert-said", text=raised.output).after(raised)
    # If / Elif / Else: one `condition-branches` DAG around three condition tasks.
    with dsl.If(summary.outputs["n"] > flood, name="flood"):
        alert(label="flood", mean=summary.outputs["mean"], n=summary.outputs["n"])
    with dsl.Elif(summary.outputs["mean"] > threshold, name="warm"):
        note(label="warm", text="above threshold")
    with dsl.Else(name="calm"):
        note(label="calm", text="below threshold")


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def square(x: int) -> int:
    from kubesage.tracking import step_run

    with step_run(f"square-{x}") as run:
        run.log_metrics({f"square-{x}": x * x}, also_parent=True)
    return x * x


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def weighted_total(label: str, values: List[int], weights: dict, tags: list) -> int:
    from kubesage.tracking import step_run

    # kfp.local hands collected integers over as JSON numbers (floats); the sum is whole either way.
    total = int(sum(int(v) * int(weights.get(str(i), 1)) for i, v in enumerate(values)))
    with step_run(label) as run:
        run.log_metrics({f"{label}.total": total}, also_parent=True)
        run.set_tags({"tags": ",".join(str(t) for t in tags)})
    return total


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def scale(label: str, x: int, factor: int) -> int:
    from kubesage.tracking import step_run

    name = f"{label}-{x}"  # the same component runs in a loop and in a sub-pipeline used twice
    with step_run(name) as run:
        run.log_metrics({name: x * factor}, also_parent=True)
    return x * factor


@dsl.pipeline(name="scaled-if-positive")
def scaled_if_positive(label: str, x: int, factor: int) -> int:
    once = scale(label=label, x=x, factor=factor)
    with dsl.If(once.output > 10, name="big"):
        scale(label="big", x=once.output, factor=factor)
    return once.output


@dsl.pipeline(name="conformance-loops")
def loops_and_subpipelines(
    factor: int = 2,
    weights: dict = {"0": 1, "1": 10, "2": 100},  # noqa: B006
    tags: list = ["a", "b"],  # noqa: B006
) -> None:
    with dsl.ParallelFor([1, 2, 3]) as item:
        squared = square(x=item)
        with dsl.If(item > 1, name="past-first"):
            scale(label="loop-scale", x=item, factor=factor)
    total = weighted_total(label="total", values=dsl.Collected(squared.output), weights=weights, tags=tags)
    first = scaled_if_positive(label="first", x=total.output, factor=factor)
    second = scaled_if_positive(label="second", x=1, factor=factor).after(first)
    flagged = note(label="flag", text="done").after(second)
    with dsl.If(flagged.output == True, name="flagged"):  # noqa: E712  (a KFP condition, not a Python test)
        note(label="flagged", text="yes")

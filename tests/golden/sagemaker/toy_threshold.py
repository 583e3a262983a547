# Component bodies ship to the task as source text; they stay with os/open on purpose.
# ruff: noqa: PTH103, PTH118, PTH123, SIM115
"""Toy KFP pipeline for the SageMaker compiler: typed parameters, a Model, Metrics and a dsl.If.

Lightweight components on the standard library only, so they run anywhere kfp runs.
"""

from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Model, Output


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def make_data(n_rows: int, noise: float, shuffle: bool, seed: int, data: Output[Dataset]) -> None:
    import random

    rng = random.Random(seed)
    rows = [(x / n_rows, 3.0 * (x / n_rows) + 1.0 + rng.gauss(0.0, noise)) for x in range(n_rows)]
    if shuffle:
        rng.shuffle(rows)
    with open(data.path, "w") as fh:
        fh.writelines(f"{y},{x}\n" for x, y in rows)


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def fit_line(data: Input[Dataset], label: str, model: Output[Model], train_metrics: Output[Metrics]) -> None:
    import json
    import os

    pairs = [tuple(map(float, line.split(","))) for line in open(data.path)]
    n = len(pairs)
    mean_x = sum(x for _, x in pairs) / n
    mean_y = sum(y for y, _ in pairs) / n
    slope = sum((x - mean_x) * (y - mean_y) for y, x in pairs) / sum((x - mean_x) ** 2 for _, x in pairs)
    os.makedirs(model.path, exist_ok=True)
    with open(os.path.join(model.path, "line.json"), "w") as fh:
        json.dump({"slope": slope, "intercept": mean_y - slope * mean_x, "label": label}, fh)
    train_metrics.log_metric("n_rows", n)


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def score_line(data: Input[Dataset], model: Input[Model], metrics: Output[Metrics]) -> float:
    import json
    import os

    line = json.load(open(os.path.join(model.path, "line.json")))
    pairs = [tuple(map(float, row.split(","))) for row in open(data.path)]
    mean_y = sum(y for y, _ in pairs) / len(pairs)
    ss_res = sum((y - (line["slope"] * x + line["intercept"])) ** 2 for y, x in pairs)
    ss_tot = sum((y - mean_y) ** 2 for y, _ in pairs)
    r2 = 1.0 - ss_res / ss_tot
    metrics.log_metric("r2", r2)
    return r2


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def publish(model: Input[Model], r2: float, note: dsl.OutputPath(str)) -> None:
    import json
    import os

    line = json.load(open(os.path.join(model.path, "line.json")))
    with open(note, "w") as fh:
        fh.write(f"published {line['label']} r2={r2:.4f}")


@dsl.pipeline(name="kubesage-toy-threshold")
def toy_threshold(
    n_rows: int = 200, noise: float = 0.1, label: str = "toy", shuffle: bool = True, min_r2: float = 0.5
) -> None:
    data = make_data(n_rows=n_rows, noise=noise, shuffle=shuffle, seed=7)
    fitted = fit_line(data=data.outputs["data"], label=label)
    fitted.set_display_name("Fit a line")
    scored = score_line(data=data.outputs["data"], model=fitted.outputs["model"])
    scored.set_retry(num_retries=2)
    with dsl.If(scored.outputs["Output"] >= min_r2, name="good-enough"):
        publish(model=fitted.outputs["model"], r2=scored.outputs["Output"]).set_caching_options(False)

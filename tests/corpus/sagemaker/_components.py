# Component bodies ship to the task as source text; they stay with os/open on purpose.
# ruff: noqa: PTH123, SIM115
"""Components the corpus pipelines share: lightweight (Python) and container components."""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Model, Output, OutputPath


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def echo(x: int) -> int:
    return x


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def say(text: str) -> str:
    return text


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def every_type(s: str, i: int, f: float, b: bool, items: list, config: dict) -> str:
    return f"{s}|{i}|{f}|{b}|{items}|{sorted(config.items())}"


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def total(xs: list) -> int:
    return sum(xs)


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def make_data(n: int, data: Output[Dataset]) -> None:
    with open(data.path, "w") as fh:
        fh.write("\n".join(str(i) for i in range(n)))


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def count_lines(data: Input[Dataset]) -> int:
    return len(open(data.path).read().splitlines())


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def fit(data: Input[Dataset], model: Output[Model], metrics: Output[Metrics]) -> None:
    n = len(open(data.path).read().splitlines())
    metrics.log_metric("rows", n)
    with open(model.path, "w") as fh:
        fh.write(str(n))


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def score(model: Input[Model]) -> float:
    return float(open(model.path).read()) / 10


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def split(text: str) -> NamedTuple("Parts", [("head", str), ("size", int)]):  # type: ignore[valid-type]
    from collections import namedtuple

    words = text.split()
    return namedtuple("Parts", ["head", "size"])(words[0], len(words))  # type: ignore[call-arg]


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def flip(seed: int) -> str:
    return "heads" if seed % 2 == 0 else "tails"


@dsl.container_component
def shout(text: str) -> dsl.ContainerSpec:
    return dsl.ContainerSpec(image="alpine:3.20", command=["echo"], args=[text])


@dsl.container_component
def write_text(text: str, out: OutputPath(str)) -> dsl.ContainerSpec:  # type: ignore[valid-type]
    return dsl.ContainerSpec(
        image="alpine:3.20", command=["sh", "-c", 'mkdir -p "$(dirname "$1")" && echo "$0" > "$1"'], args=[text, out]
    )


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def read_metrics(metrics: Input[Metrics]) -> float:
    return float(metrics.metadata.get("rows", 0))


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def count_all(datasets: Input[list[Dataset]]) -> int:
    return sum(len(open(d.path).read().splitlines()) for d in datasets)


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def numbers(n: int) -> list:
    return list(range(n))


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def use_token(mount: str) -> str:
    """A digest of the secret as env and as a file, and the file's mode and whether the task owns it:
    proves both arrived without returning either."""
    import hashlib
    import os
    from pathlib import Path

    path = Path(mount) / "token"
    filed = path.read_text(encoding="utf-8")
    digest = hashlib.sha256(f"{os.environ['API_TOKEN']}|{filed}|{os.environ['LOG_LEVEL']}".encode()).hexdigest()
    mode = path.stat().st_mode & 0o777
    return f"{digest} {mode:o} {'own' if path.stat().st_uid == os.getuid() else 'foreign'}"

"""Plain pipelines: every parameter type, lightweight and container components, artifacts, models."""

from kfp import dsl

from tests.corpus.sagemaker._components import (
    count_lines,
    echo,
    every_type,
    fit,
    make_data,
    read_metrics,
    say,
    score,
    shout,
    split,
    write_text,
)
from tests.corpus.sagemaker._expect import Case, Refused, Translates


@dsl.pipeline(name="hello")
def hello(text: str = "hello") -> None:
    say(text=text)


@dsl.pipeline(name="every-parameter-type")
def every_parameter_type(
    s: str = "a",
    i: int = 1,
    f: float = 0.5,
    b: bool = True,
    items: list = [1, "two", 3.0],  # noqa: B006
    config: dict = {"k": [1, 2]},  # noqa: B006
) -> None:
    every_type(s=s, i=i, f=f, b=b, items=items, config=config)


@dsl.pipeline(name="constant-list-and-dict")
def constant_list_and_dict() -> None:
    every_type(s="x", i=2, f=1.5, b=False, items=["é", 2], config={"nested": {"a": True}})


@dsl.pipeline(name="required-parameters")
def required_parameters(text: str, n: int) -> None:
    say(text=text)
    echo(x=n)


@dsl.pipeline(name="container-components")
def container_components(text: str = "hi") -> None:
    shout(text=text)
    written = write_text(text=text)
    say(text=written.output)


@dsl.pipeline(name="artifact-chain")
def artifact_chain(n: int = 5) -> None:
    data = make_data(n=n)
    count_lines(data=data.outputs["data"])


@dsl.pipeline(name="train-and-score")
def train_and_score(n: int = 10) -> None:
    data = make_data(n=n)
    model = fit(data=data.outputs["data"])
    score(model=model.outputs["model"])


@dsl.pipeline(name="training-metrics-read-downstream")
def training_metrics_read_downstream(n: int = 10) -> None:
    data = make_data(n=n)
    model = fit(data=data.outputs["data"])
    read_metrics(metrics=model.outputs["metrics"])


@dsl.pipeline(name="named-tuple-outputs")
def named_tuple_outputs(text: str = "a b c") -> None:
    parts = split(text=text)
    say(text=parts.outputs["head"])
    echo(x=parts.outputs["size"])


@dsl.pipeline(name="task-options")
def task_options(n: int = 3) -> None:
    first = echo(x=n).set_display_name("First echo").set_caching_options(False)
    first.set_retry(num_retries=2, backoff_duration="5s", backoff_factor=2.0)
    first.set_cpu_limit("2").set_memory_limit("4G").set_env_variable("MODE", "fast")
    echo(x=n).after(first)


@dsl.pipeline(name="ignore-upstream-failure")
def ignore_upstream_failure() -> None:
    first = echo(x=1)
    say(text="cleanup").after(first).ignore_upstream_failure()


CORPUS: list[Case] = [
    (hello, Translates("say", report=("parameter 'text' STRING -> ParameterString",))),
    (
        every_parameter_type,
        Translates("every-type", report=("parameter 'items' LIST -> ParameterString holding JSON",)),
    ),
    (constant_list_and_dict, Translates("every-type")),
    (required_parameters, Translates("say", "echo", report=("(required)",))),
    (container_components, Translates("shout", "write-text", "say")),
    (artifact_chain, Translates("make-data", "count-lines")),
    (train_and_score, Translates("make-data", "fit", "score", report=("TrainingStep 'fit'",))),
    (
        training_metrics_read_downstream,
        Refused(r"task 'read-metrics': input 'metrics' reads output 'metrics' of training"),
    ),
    (named_tuple_outputs, Translates("split", "say", "echo", report=("JsonGet(split.parameters.head)",))),
    (task_options, Translates("echo", "echo-2", report=("retry x2", "resource requests ignored"))),
    (
        ignore_upstream_failure,
        Translates("echo", "say", "say-upstream-status", "say-upstream-failed", report=("ignores upstream failure",)),
    ),
]

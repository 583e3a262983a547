"""`.ignore_upstream_failure()`: translated as dsl.ExitHandler is (record, run the task, then fail), or refused."""

from kfp import dsl, kubernetes
from kfp.dsl import Dataset, Input

from tests.corpus.sagemaker._components import echo, fit, make_data, say
from tests.corpus.sagemaker._expect import Case, Refused, Translates


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def tidy(text: str = "default") -> str:
    return text


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def keep(text: str = "default", data: Input[Dataset] = None) -> str:
    return f"{text}|{data is None}"


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def status_of(status: dsl.PipelineTaskFinalStatus, text: str = "") -> str:
    return f"{status.state} {text}"


@dsl.pipeline(name="ignore-upstream-reads-outputs")
def ignore_upstream_reads_outputs(n: int = 3) -> None:
    """kubeflow/pipelines' pipeline_with_task_using_ignore_upstream_failure, with an artifact too."""
    made = make_data(n=n)
    keep(text=say(text="hi").output, data=made.outputs["data"]).ignore_upstream_failure()


@dsl.pipeline(name="ignore-upstream-then-more")
def ignore_upstream_then_more(n: int = 3) -> None:
    first = echo(x=n)
    cleaned = tidy(text="cleanup").after(first).ignore_upstream_failure()
    with dsl.If(n > 1):
        say(text=cleaned.output)


@dsl.pipeline(name="ignore-upstream-final-status")
def ignore_upstream_final_status() -> None:
    worker = say(text="work")
    status_of(text=worker.output).ignore_upstream_failure()


@dsl.pipeline(name="ignore-upstream-no-upstream")
def ignore_upstream_no_upstream() -> None:
    tidy(text="alone").ignore_upstream_failure()  # KFP: no effect


@dsl.pipeline(name="ignore-upstream-of-a-chain")
def ignore_upstream_of_a_chain(n: int = 3) -> None:
    first = echo(x=n)
    second = echo(x=first.output)
    tidy(text="cleanup").after(second).ignore_upstream_failure()


@dsl.pipeline(name="ignore-upstream-read-elsewhere")
def ignore_upstream_read_elsewhere() -> None:
    first = say(text="hi")
    tidy(text=first.output).ignore_upstream_failure()
    say(text=first.output)


@dsl.pipeline(name="ignore-upstream-training")
def ignore_upstream_training(n: int = 3) -> None:
    model = fit(data=make_data(n=n).outputs["data"])
    tidy(text="cleanup").after(model).ignore_upstream_failure()


@dsl.pipeline
def two_says(text: str = "hi") -> None:
    say(text=text)


@dsl.pipeline(name="ignore-upstream-after-a-sub-pipeline")
def ignore_upstream_after_a_sub_pipeline() -> None:
    group = two_says()
    tidy(text="cleanup").after(group).ignore_upstream_failure()


@dsl.pipeline(name="ignore-upstream-in-a-runtime-loop")
def ignore_upstream_in_a_runtime_loop(items: list = [1, 2]) -> None:  # noqa: B006
    with dsl.ParallelFor(items) as item:
        first = echo(x=item)
        tidy(text="cleanup").after(first).ignore_upstream_failure()


@dsl.pipeline(name="ignore-upstream-secret")
def ignore_upstream_secret() -> None:
    first = say(text="hi")
    task = tidy(text=first.output).ignore_upstream_failure()
    kubernetes.use_secret_as_env(task, secret_name="api-token", secret_key_to_env={"token": "API_TOKEN"})


CORPUS: list[Case] = [
    (
        ignore_upstream_reads_outputs,
        Translates(
            "make-data",
            "say",
            "keep",
            "keep-upstream-status",
            "keep-upstream-failed",
            report=(
                "task 'keep' ignores upstream failure -> its upstream tasks ['make-data', 'say'] record a failure",
                "an input from one that did not succeed takes its default, as on KFP",
            ),
        ),
    ),
    (
        ignore_upstream_then_more,
        Translates("echo", "tidy", "condition-1", "say", "tidy-upstream-status", "tidy-upstream-failed"),
    ),
    (
        ignore_upstream_final_status,
        Translates("say", "status-of", "status-of-upstream-status", "status-of-upstream-failed"),
    ),
    (ignore_upstream_no_upstream, Translates("tidy")),
    (
        ignore_upstream_of_a_chain,
        Refused(
            r"^task 'tidy': ignore_upstream_failure after 'echo-2', which itself runs after 'echo' cannot be "
            r"compiled to SageMaker Pipelines; .*put the tasks in a dsl.ExitHandler whose exit task is 'tidy'$"
        ),
    ),
    (
        ignore_upstream_read_elsewhere,
        Refused(
            r"^task 'say-2': runs after 'say', whose failure is recorded for 'tidy' \(ignore_upstream_failure\) "
            r"cannot be compiled to SageMaker Pipelines; .*give this task ignore_upstream_failure too$"
        ),
    ),
    (
        ignore_upstream_training,
        Refused(r"^task 'tidy': ignore_upstream_failure after 'fit', a training task .*no outputs.json to record"),
    ),
    (
        ignore_upstream_after_a_sub_pipeline,
        Refused(r"^task 'tidy': ignore_upstream_failure after the group 'two-says' \(a sub-pipeline, loop or dsl.If\)"),
    ),
    (
        ignore_upstream_in_a_runtime_loop,
        Refused(r"^task 'for-loop-1': ignore_upstream_failure on 'tidy' inside a runtime dsl.ParallelFor"),
    ),
    (
        ignore_upstream_secret,
        Translates("say", "tidy", "tidy-upstream-status", "tidy-upstream-failed"),
    ),
]

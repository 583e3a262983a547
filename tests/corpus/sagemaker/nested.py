"""Pipelines used as components (sub-pipelines), at several depths; exit handlers (dsl.ExitHandler)."""

from kfp import dsl
from kfp.dsl import Dataset

from tests.corpus.sagemaker._components import count_lines, echo, fit, make_data, numbers, say
from tests.corpus.sagemaker._expect import Case, Refused, Translates


@dsl.pipeline
def inner(a: int) -> int:
    first = echo(x=a)
    with dsl.If(first.output > 1):
        echo(x=first.output)
    return first.output


@dsl.pipeline
def middle(b: int) -> int:
    deeper = inner(a=b)
    return echo(x=deeper.output).output


@dsl.pipeline
def data_maker(n: int) -> Dataset:
    return make_data(n=n).outputs["data"]


@dsl.pipeline(name="sub-pipeline")
def sub_pipeline(n: int = 3) -> None:
    result = inner(a=n)
    echo(x=result.output)


@dsl.pipeline(name="sub-pipeline-three-deep")
def sub_pipeline_three_deep(n: int = 3) -> None:
    result = middle(b=n)
    echo(x=result.output)


@dsl.pipeline(name="sub-pipeline-twice")
def sub_pipeline_twice(n: int = 3) -> None:
    one = inner(a=n)
    inner(a=one.output)


@dsl.pipeline(name="sub-pipeline-in-condition")
def sub_pipeline_in_condition(n: int = 3) -> None:
    with dsl.If(n > 0):
        inner(a=n)


@dsl.pipeline(name="sub-pipeline-artifact")
def sub_pipeline_artifact(n: int = 4) -> None:
    made = data_maker(n=n)
    count_lines(data=made.output)


@dsl.pipeline
def greeter(n: int, items: list = [1, 2]) -> None:  # noqa: B006 - KFP records the default in the IR
    with dsl.ParallelFor(items) as item:
        echo(x=item)
    echo(x=n)


@dsl.pipeline(name="sub-pipeline-default-input")
def sub_pipeline_default_input(n: int = 3) -> None:
    greeter(n=n)  # items left out: the sub-pipeline's default applies, as on KFP


@dsl.pipeline(name="after-sub-pipeline")
def after_sub_pipeline(n: int = 3) -> None:
    group = inner(a=n)
    say(text="done").after(group)


@dsl.pipeline(name="exit-handler")
def exit_handler() -> None:
    with dsl.ExitHandler(say(text="bye")):
        echo(x=1)


@dsl.pipeline(name="exit-handler-chain")
def exit_handler_chain(n: int = 3) -> None:
    with dsl.ExitHandler(say(text="cleanup"), name="guarded"):
        made = make_data(n=n)
        counted = count_lines(data=made.outputs["data"])
        echo(x=counted.output)


@dsl.pipeline(name="exit-task-walked-first")
def exit_task_walked_first() -> None:
    with dsl.ExitHandler(echo(x=0)):  # 'echo' sorts before 'exit-handler-1'
        say(text="hi")


@dsl.pipeline(name="exit-handler-training")
def exit_handler_training(n: int = 3) -> None:
    with dsl.ExitHandler(say(text="cleanup")):
        fit(data=make_data(n=n).outputs["data"])


@dsl.pipeline(name="exit-handler-condition")
def exit_handler_condition(n: int = 3) -> None:
    with dsl.ExitHandler(say(text="cleanup")), dsl.If(n > 1):
        echo(x=n)


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def report(status: dsl.PipelineTaskFinalStatus) -> str:
    return status.state


@dsl.pipeline(name="exit-handler-final-status")
def exit_handler_final_status() -> None:
    with dsl.ExitHandler(report()):
        echo(x=1)


@dsl.pipeline
def notify(text: str = "done") -> None:
    say(text=text)


@dsl.pipeline(name="pipeline-as-exit-task")
def pipeline_as_exit_task() -> None:
    with dsl.ExitHandler(notify()):
        echo(x=1)


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def run_state(status: dict) -> str:
    return status["state"]


@dsl.pipeline
def notify_on_failure(status: dsl.PipelineTaskFinalStatus) -> None:
    """kubeflow/pipelines' pipeline_as_exit_task: a dsl.If on the status the exit pipeline reads."""
    with dsl.If(run_state(status=status).output == "FAILED"):
        say(text="notify task failure")


@dsl.pipeline(name="pipeline-as-exit-task-with-status")
def pipeline_as_exit_task_with_status() -> None:
    with dsl.ExitHandler(notify_on_failure(), name="guarded"):
        first = echo(x=1)
        echo(x=first.output)


@dsl.pipeline
def notify_each(status: dsl.PipelineTaskFinalStatus) -> None:
    with dsl.ParallelFor(numbers(n=2).output) as item:
        run_state(status=status).after(echo(x=item))


@dsl.pipeline(name="pipeline-as-exit-task-status-into-a-loop")
def pipeline_as_exit_task_status_into_a_loop() -> None:
    with dsl.ExitHandler(notify_each()):
        echo(x=1)


CORPUS: list[Case] = [
    (
        sub_pipeline,
        Translates("inner-echo", "inner-condition-1", "inner-echo-2", "echo", report=("sub-pipeline 'inner'",)),
    ),
    (
        sub_pipeline_three_deep,
        Translates("middle-inner-echo", "middle-inner-condition-1", "middle-inner-echo-2", "middle-echo", "echo"),
    ),
    (
        sub_pipeline_twice,
        Translates(
            "inner-echo", "inner-condition-1", "inner-echo-2", "inner-2-echo", "inner-2-condition-1", "inner-2-echo-2"
        ),
    ),
    (sub_pipeline_in_condition, Translates("condition-1", "inner-echo", "inner-condition-1", "inner-echo-2")),
    (sub_pipeline_artifact, Translates("data-maker-make-data", "count-lines")),
    (
        sub_pipeline_default_input,
        Translates("greeter-for-loop-1-0-echo", "greeter-for-loop-1-1-echo", "greeter-echo-2"),
    ),
    (after_sub_pipeline, Translates("inner-echo", "inner-condition-1", "inner-echo-2", "say")),
    (
        exit_handler,
        Translates(
            "echo",
            "say",
            "exit-handler-1-status",
            "exit-handler-1-failed",
            report=("exit task 'say' runs after them all",),
        ),
    ),
    (
        exit_handler_chain,
        Translates(
            "make-data",
            "count-lines",
            "echo",
            "say",
            "exit-handler-1-status",
            "exit-handler-1-failed",
            report=("its tasks ['count-lines', 'echo', 'make-data'] record a failure",),
        ),
    ),
    (
        exit_task_walked_first,
        Translates("echo", "say", "exit-handler-1-status", "exit-handler-1-failed", report=("exit task 'echo'",)),
    ),
    (exit_handler_training, Refused(r"task 'fit': a training task inside dsl.ExitHandler 'exit-handler-1'")),
    (exit_handler_condition, Refused(r"task 'condition-2': a dsl.If inside dsl.ExitHandler 'exit-handler-1'")),
    (
        exit_handler_final_status,
        Translates("echo", "report", "exit-handler-1-status", "exit-handler-1-failed"),
    ),
    (
        pipeline_as_exit_task,
        Translates(
            "echo",
            "notify-say",
            "exit-handler-1-status",
            "exit-handler-1-failed",
            report=("exit pipeline 'notify' is inlined and each of its steps ['notify-say'] runs after them all",),
        ),
    ),
    (
        pipeline_as_exit_task_with_status,
        Translates(
            "echo",
            "echo-2",
            "notify-on-failure-run-state",
            "notify-on-failure-condition-1",
            "notify-on-failure-say",
            "exit-handler-1-status",
            "exit-handler-1-failed",
        ),
    ),
    (
        notify_on_failure,  # kubeflow/pipelines' pipeline_with_task_final_status_as_parameter, compiled on its own
        Refused(
            r"^pipeline parameter 'status': a dsl.PipelineTaskFinalStatus input, which KFP gives only to the exit "
            r"task of a dsl.ExitHandler .*compile the pipeline that uses it in dsl.ExitHandler\(...\)"
        ),
    ),
    (
        pipeline_as_exit_task_status_into_a_loop,
        Refused(
            r"^task 'notify-each-for-loop-1': dsl.PipelineTaskFinalStatus passed into a runtime dsl.ParallelFor "
            r"cannot be compiled"
        ),
    ),
]

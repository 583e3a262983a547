"""Small KFP pipelines for the local runner's launcher, cache and parallel tests.

Each task records what it saw as its MLflow step run's parameters (kubesage's own `step_run`), so a
test reads the values back from a real store. The bodies import only the standard library and
kubesage.tracking, so a run takes seconds.
"""

from kfp import dsl
from kfp.dsl import Dataset, Input, Output


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def leave_traces(out: Output[Dataset]) -> None:
    """Changes what a task could leak into the next one: a module global, the environment, the cwd,
    a temporary folder (and, as KFP's launch line does, the component's own source in another)."""
    import json
    import os
    import tempfile
    from pathlib import Path

    from kubesage.tracking import step_run

    with step_run("leave_traces") as tracker:
        json.kubesage_leaked = True  # type: ignore[attr-defined]
        os.environ["KUBESAGE_LEAKED"] = "1"
        os.chdir("/")
        Path(out.path).write_text("traces left", encoding="utf-8")
        left = tempfile.mkdtemp(prefix="left-by-task-")
        tracker.log_params({"cwd": str(Path.cwd()), "temp_left": left, "source": __file__})


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def look_for_traces(data: Input[Dataset]) -> None:
    import json
    import os
    import tempfile
    from pathlib import Path

    from kubesage.tracking import step_run

    with step_run("look_for_traces") as tracker:
        tracker.log_params(
            {
                "global_seen": hasattr(json, "kubesage_leaked"),
                "env_seen": os.environ.get("KUBESAGE_LEAKED", "absent"),
                "cwd": str(Path.cwd()),
                "input": Path(data.path).read_text(encoding="utf-8"),
                "temp_dir": tempfile.gettempdir(),
            }
        )


@dsl.pipeline(name="isolation")
def isolation_pipeline() -> None:
    first = leave_traces()
    look_for_traces(data=first.outputs["out"])


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def where_am_i() -> None:
    """What a task of a later run sees: any trace an earlier run's task left, and its parent process."""
    import json
    import os
    from pathlib import Path

    from kubesage.tracking import step_run

    with step_run("where_am_i") as tracker:
        tracker.log_params(
            {
                "global_seen": hasattr(json, "kubesage_leaked"),
                "env_seen": os.environ.get("KUBESAGE_LEAKED", "absent"),
                "cwd": str(Path.cwd()),
                "parent_pid": os.getppid(),
            }
        )


@dsl.pipeline(name="where-am-i")
def where_am_i_pipeline() -> None:
    where_am_i()


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def crash(how: str) -> None:
    """Dies the way a native library can: a segfault, or os._exit without cleanup."""
    import os
    import signal

    if how == "segfault":
        os.kill(os.getpid(), signal.SIGSEGV)
    os._exit(3)


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def survive() -> None:
    import os

    from kubesage.tracking import step_run

    with step_run("survive") as tracker:
        tracker.log_params({"pid_differs": os.getpid() != os.getppid()})


@dsl.pipeline(name="crash-then-continue")
def crash_pipeline(how: str = "segfault") -> None:
    crashed = crash(how=how)
    survive().after(crashed).ignore_upstream_failure()


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def write_text(text: str, out: Output[Dataset]) -> None:
    from pathlib import Path

    from kubesage.tracking import step_run

    with step_run("write_text") as tracker:
        Path(out.path).write_text(text, encoding="utf-8")
        tracker.log_metrics({"chars": len(text)})


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def count_chars(data: Input[Dataset], extra: int) -> int:
    from pathlib import Path

    from kubesage.tracking import step_run

    with step_run("count_chars") as tracker:
        count = len(Path(data.path).read_text(encoding="utf-8")) + extra
        tracker.log_metrics({"count": count}, also_parent=True)
    return count


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def stamp(label: str) -> None:
    from kubesage.tracking import step_run

    with step_run(f"stamp_{label}") as tracker:
        tracker.log_params({"label": label})


@dsl.pipeline(name="cache-check")
def cache_pipeline(text: str = "hello", extra: int = 0) -> None:
    written = write_text(text=text)
    count_chars(data=written.outputs["out"], extra=extra)
    stamp(label="uncached").set_caching_options(False)


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def hold(label: str, seconds: float, rendezvous_dir: str, wait_seconds: float) -> None:
    """Sleeps `seconds`, then leaves a marker in `rendezvous_dir` and waits (at most `wait_seconds`)
    for the other three: how many markers it saw tells whether the four tasks ran at once."""
    import time
    from pathlib import Path

    from kubesage.tracking import step_run

    with step_run(f"hold_{label}") as tracker:
        time.sleep(seconds)
        seen = 0
        if rendezvous_dir:
            meeting = Path(rendezvous_dir)
            (meeting / label).touch()
            deadline = time.monotonic() + wait_seconds
            while (seen := len(list(meeting.iterdir()))) < 4 and time.monotonic() < deadline:
                time.sleep(0.05)
        tracker.log_metrics({"peers_seen": seen})


@dsl.pipeline(name="four-independent")
def four_independent_pipeline(seconds: float = 0.0, rendezvous_dir: str = "", wait_seconds: float = 0.0) -> None:
    for label in ("a", "b", "c", "d"):
        hold(
            label=label, seconds=seconds, rendezvous_dir=rendezvous_dir, wait_seconds=wait_seconds
        ).set_caching_options(False)


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def count_rows(input_data: str) -> int:
    """Stands in for the training pipeline when `kubesage drift --retrain-data` starts one."""
    from pathlib import Path

    return len(Path(input_data).read_text(encoding="utf-8").splitlines()) - 1


@dsl.pipeline(name="retrain-stand-in")
def retrain_pipeline(input_data: str) -> None:
    count_rows(input_data=input_data)

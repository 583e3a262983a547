"""A local-mode job's exit code read from its containers, not from docker-compose's guess.

The SDK (sagemaker-core 2.27, image.py `_stream_output`) decides whether a local job failed by the
exit code of `docker-compose up --abort-on-container-exit`. docker-compose 1.29 (Debian's, the one
this machine has) computes that code from the container its log printer names as the first to stop,
and its log printer can return without naming one: the event thread drops the container on its
`die` event, and if the log thread has not queued the container's exit within the next 0.1 s (a
loaded machine), `up` exits 0 for a container that exited non-zero. Compose's maintainers say as
much (docker/compose#3725: "it's not guaranteed that we'll get the exit code of the first container
that triggered the shutdown"). Seen here: a failed preprocess step reported as succeeded, and the
training step then run on outputs that did not exist.

`check_job_exits` therefore wraps `_stream_output`: when compose says 0, the job's containers are
asked (`docker inspect`) and the one that ended first, the one that ended the job (the others were
stopped by `--abort-on-container-exit`), decides. A non-zero code raises the SDK's own error, so the
step fails as it would have had compose reported it.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubesage.errors import RunnerError

# docker-compose 1.x labels each container with the folder of its compose file; the SDK writes each
# job's compose file into a new temporary folder, so the label names exactly one job's containers.
WORKING_DIR_LABEL = "com.docker.compose.project.working_dir"
_DOCKER_TIMEOUT_SECONDS = 60


@dataclass(frozen=True)
class ContainerExit:
    name: str
    exit_code: int
    finished_at: str  # RFC 3339, UTC, as Docker reports it

    @property
    def order(self) -> tuple[str, str]:
        """Sorts by the time it ended: Docker trims the fraction's trailing zeros, so it is padded back."""
        seconds, _, fraction = self.finished_at.rstrip("Z").partition(".")
        return seconds, fraction.ljust(9, "0")


def compose_file(args: Sequence[str] | str) -> Path | None:
    """The compose file of an attached `docker-compose -f FILE up` command line, or None for anything else."""
    if isinstance(args, str) or "up" not in args or "--detach" in args:
        return None
    try:
        return Path(args[list(args).index("-f") + 1])
    except (ValueError, IndexError):
        return None


def container_exits(working_dir: Path) -> list[ContainerExit]:
    """The exited containers docker-compose started from the compose file in `working_dir`, first to end first."""
    listed = _docker("ps", "-a", "--filter", f"label={WORKING_DIR_LABEL}={working_dir}", "--format", "{{.ID}}")
    ids = listed.split()
    if not ids:
        return []
    fields = "{{.Name}} {{.State.Status}} {{.State.ExitCode}} {{.State.FinishedAt}}"
    exits = []
    for line in _docker("inspect", "--format", fields, *ids).splitlines():
        name, status, code, finished = line.split()
        if status == "exited":
            exits.append(ContainerExit(name.lstrip("/"), int(code), finished))
    return sorted(exits, key=lambda e: e.order)


def job_exit_code(working_dir: Path) -> int | None:
    """The exit code of the container that ended the job, or None if none has exited."""
    exits = container_exits(working_dir)
    return exits[0].exit_code if exits else None


def check_job_exits(stream_output: Callable[[Any], int]) -> Callable[[Any], int]:
    """`stream_output` (the SDK's `_stream_output`), failing as it does when compose said 0 for a failed container."""

    def stream_output_checked(process: Any) -> int:
        code = stream_output(process)
        file = compose_file(process.args)
        if code != 0 or file is None:
            return code
        actual = job_exit_code(file.parent)
        if actual not in (None, 0):
            # the SDK's own message, which the step's failure reason and readable_failure() expect
            raise RuntimeError(f"Failed to run: {process.args}. Process exited with code: {actual}")
        return code

    stream_output_checked._kubesage_job_exits = True  # type: ignore[attr-defined]
    return stream_output_checked


def read_job_exits_from_containers() -> None:
    """Make the SDK's local mode read each job's exit code from its containers (once per process)."""
    from sagemaker.core.local import image

    current = getattr(image, "_stream_output", None)
    if not callable(current):
        raise RunnerError(
            "this SageMaker SDK's local mode has no image._stream_output: kubesage cannot check its "
            "jobs' exit codes (tested with sagemaker-core 2.27)"
        )
    if not getattr(current, "_kubesage_job_exits", False):
        image._stream_output = check_job_exits(current)


def _docker(*args: str) -> str:
    try:
        return subprocess.run(
            ["docker", *args], capture_output=True, text=True, timeout=_DOCKER_TIMEOUT_SECONDS, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        # the job ran in this engine a moment ago: an engine that stops answering now is the news
        raise RuntimeError(f"could not read the job's exit code from Docker (docker {args[0]}): {exc}") from exc

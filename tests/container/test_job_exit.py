"""A local-mode job's exit code, read from its containers (runners/sagemaker/job_exit.py).

Real Docker engine, real docker-compose 1.29 and the kubesage image. The race in docker-compose that
makes `up --abort-on-container-exit` exit 0 for a failed container (its log printer returns before
naming the container that stopped) cannot be forced from outside; the test that stands in for it
hands the check a finished process that said 0, with the command line of a compose job whose
container really exited 3, which is what the SDK sees when the race happens.
"""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from kubesage.runners.sagemaker.job_exit import check_job_exits, container_exits
from kubesage.runners.sagemaker.sdk_output import readable_failure
from tests.container.conftest import docker

pytestmark = [pytest.mark.container]


def _compose_file(folder: Path, image: str, commands: dict[str, str]) -> Path:
    """A compose file shaped like the SDK's (one service per host, host network), one service per command."""
    suffix = uuid.uuid4().hex[:6]
    services = {
        f"algo-{i}-{suffix}": {
            "image": image,
            "container_name": f"kubesage-job-exit-{suffix}-algo-{i}",
            "network_mode": "host",
            "entrypoint": ["sh", "-c", command],
            "stop_signal": "SIGKILL",  # the survivor of a two-host job is stopped at once
        }
        for i, command in enumerate(commands.values(), start=1)
    }
    path = folder / "docker-compose.yaml"
    path.write_text(yaml.safe_dump({"version": "2.3", "services": services}))
    return path


def _up_command(file: Path) -> list[str]:
    return ["docker-compose", "-f", str(file), "up", "--build", "--abort-on-container-exit"]


@pytest.fixture
def job_folder(tmp_path: Path) -> Iterator[Path]:
    folder = tmp_path / f"job{uuid.uuid4().hex[:8]}"
    folder.mkdir()
    yield folder
    ids = docker("ps", "-aq", "--filter", f"label=com.docker.compose.project.working_dir={folder}").stdout.split()
    if ids:
        docker("rm", "-f", *ids, check=False)


def _run_job(file: Path) -> int:
    return subprocess.run(_up_command(file), capture_output=True, timeout=300, check=False).returncode


def test_a_failed_container_fails_the_job_when_compose_said_0(image: str, job_folder: Path) -> None:
    from sagemaker.core.local import image as sdk_image

    file = _compose_file(job_folder, image, {"only": "echo preprocessing; exit 3"})
    assert _run_job(file) == 3  # compose without the race
    # What the SDK holds when the race happens: compose's process, ended with 0, for that job.
    said_zero = subprocess.Popen(["true"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    said_zero.args = _up_command(file)

    with pytest.raises(RuntimeError) as raised:
        check_job_exits(sdk_image._stream_output)(said_zero)

    assert "Process exited with code: 3" in str(raised.value)
    assert readable_failure(f"{raised.value}") == "the job's container exited with code 3"


def test_the_container_that_ended_the_job_decides_not_the_ones_compose_stopped(image: str, job_folder: Path) -> None:
    from sagemaker.core.local import image as sdk_image

    file = _compose_file(job_folder, image, {"chief": "sleep 2; exit 0", "worker": "sleep 120"})
    process = subprocess.Popen(_up_command(file), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

    assert check_job_exits(sdk_image._stream_output)(process) == 0

    exits = container_exits(job_folder)
    assert [(e.name.rsplit("-", 1)[-1], e.exit_code) for e in exits] == [("1", 0), ("2", 137)]
    assert exits[0].order < exits[1].order


def test_a_job_compose_reports_failed_still_fails_with_the_sdks_message(image: str, job_folder: Path) -> None:
    from sagemaker.core.local import image as sdk_image

    file = _compose_file(job_folder, image, {"only": "exit 5"})
    process = subprocess.Popen(_up_command(file), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

    with pytest.raises(RuntimeError, match="Process exited with code: 5"):
        check_job_exits(sdk_image._stream_output)(process)

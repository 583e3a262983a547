"""Which command lines the job-exit check reads containers for, and how it orders their ends (no Docker)."""

from __future__ import annotations

from pathlib import Path

import pytest

from kubesage.runners.sagemaker.job_exit import ContainerExit, check_job_exits, compose_file


def test_the_sdks_attached_up_command_names_its_compose_file() -> None:
    command = ["docker-compose", "-f", "/tmp/tmpab12/docker-compose.yaml", "up", "--build", "--abort-on-container-exit"]

    assert compose_file(command) == Path("/tmp/tmpab12/docker-compose.yaml")


@pytest.mark.parametrize(
    "command",
    [
        ["docker-compose", "-f", "/tmp/x/docker-compose.yaml", "up", "--build", "--detach"],
        ["docker-compose", "-f", "/tmp/x/docker-compose.yaml", "down"],
        ["docker-compose", "up"],
        "docker-compose -f /tmp/x/docker-compose.yaml up",
    ],
)
def test_other_commands_are_not_checked(command: list[str] | str) -> None:
    assert compose_file(command) is None


def test_ends_sort_by_time_although_docker_trims_trailing_zeros() -> None:
    trimmed = ContainerExit("a", 0, "2026-12-06T07:40:01.1234Z")  # .123400000
    full = ContainerExit("b", 1, "2026-12-06T07:40:01.123456789Z")
    later = ContainerExit("c", 1, "2026-12-06T07:40:02Z")

    assert sorted([later, full, trimmed], key=lambda e: e.order) == [trimmed, full, later]


class _Finished:
    def __init__(self, args: object) -> None:
        self.args = args


def test_a_non_zero_code_or_another_command_is_passed_through_without_asking_docker() -> None:
    # Neither case reaches Docker (there is none in this test): compose's own failure stands as the SDK reads it.
    assert check_job_exits(lambda _p: 7)(_Finished(["docker-compose", "-f", "/nowhere/f.yaml", "up"])) == 7
    assert check_job_exits(lambda _p: 0)(_Finished(["docker", "run", "x"])) == 0


def test_local_mode_reads_each_jobs_exit_code_from_its_containers_once_per_process() -> None:
    from sagemaker.core.local import image

    from kubesage.runners.sagemaker.local_mode import prepare_sdk_local_mode

    before = image._stream_output
    try:
        prepare_sdk_local_mode()
        checked = image._stream_output
        prepare_sdk_local_mode()

        assert getattr(checked, "_kubesage_job_exits", False)
        assert image._stream_output is checked  # not wrapped twice
    finally:
        image._stream_output = before

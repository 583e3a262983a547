"""KFP local runner output: task logs to a file, task start/end to `Progress`.

KFP's local runner logs "Executing task 'x'" and "Task 'x' finished with status SUCCESS" on the root
logger and prints each task's output (its executor input JSON, library chatter) with `print`. Both
go through `sys.stdout`, which `capture_task_output` points at a `TaskLog` (runners/task_logs.py):
every line goes to the run's log file, and to `Progress.log` (the console shows it with
`--verbose`). A filter on the root logger (KFP swaps the root logger's handlers per task, never
its filters) turns the two task messages into `StepEvent`s with their timing.
Tasks may run at once (parallel.py): the task a line belongs to is per thread, since a task's
output is printed on the thread that started it.
"""

from __future__ import annotations

import logging
import re
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stdout
from pathlib import Path

from kubesage.runners.base import Progress, StepEvent
from kubesage.runners.status import StepStatus, from_kfp_local
from kubesage.runners.task_logs import TaskLog, strip_ansi

_STARTED = re.compile(r"^Executing task '(?P<name>[^']+)'")
_ENDED = re.compile(r"^Task '(?P<name>[^']+)' finished with status (?P<status>[A-Z_]+)")


class TaskEvents(logging.Filter):
    """Turns KFP's task start/end log records into StepEvents; lets every record through."""

    def __init__(self, progress: Progress, log: TaskLog) -> None:
        super().__init__()
        self._progress = progress
        self._log = log
        self._started: dict[str, float] = {}
        self.failed: list[str] = []

    def filter(self, record: logging.LogRecord) -> bool:
        message = strip_ansi(record.getMessage())
        if started := _STARTED.match(message):
            name = started["name"]
            self._started[name] = time.perf_counter()
            self._log.current_task = name
            self._progress.step(StepEvent(name, StepStatus.STARTED))
        elif ended := _ENDED.match(message):
            name = ended["name"]
            self._log.current_task = None  # KFP's own summary lines are not the task's output
            began = self._started.pop(name, None)
            seconds = time.perf_counter() - began if began is not None else None
            # Any other word KFP may log (it has none today) counts as a failure, never as a success.
            status = from_kfp_local(ended["status"]) or StepStatus.FAILED
            if status == StepStatus.FAILED:
                self.failed.append(name)
            self._progress.step(StepEvent(name, status, seconds))
        return True

    def tail(self, task: str) -> list[str]:
        """The last lines task `task` printed (for a failed task's summary)."""
        return self._log.tail(task)


@contextmanager
def capture_task_output(log_path: Path, progress: Progress) -> Iterator[TaskEvents]:
    """Within the block, KFP's output goes to `log_path` (and Progress.log) and task events to `progress`."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    root = logging.getLogger()
    with log_path.open("w", encoding="utf-8") as target:
        log = TaskLog(target, progress)
        events = TaskEvents(progress, log)
        root.addFilter(events)
        # kfp.local sets the root logger to INFO around each task and puts back the level it found;
        # with parallel loop iterations, one task putting back WARNING dropped another task's
        # "finished" record before any filter saw it. At INFO for the whole run, every put-back is INFO.
        level = root.level
        if root.getEffectiveLevel() > logging.INFO:
            root.setLevel(logging.INFO)
        try:
            with redirect_stdout(log):
                yield events
        finally:
            root.setLevel(level)
            root.removeFilter(events)
            log.write("\n")
            sys.stdout.flush()

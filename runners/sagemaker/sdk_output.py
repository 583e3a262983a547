"""The SageMaker SDK's local mode, quiet: its output to the run's log file, its step starts and ends live.

How the SDK (sagemaker-mlops / sagemaker-core 2.27) prints during a local pipeline execution:
- `sagemaker.mlops.local.pipeline_entities` logs "Starting pipeline step: 'x'", "Pipeline step 'x'
  SUCCEEDED." and "Pipeline step 'x' FAILED. Failure message is: ..." as each step starts and ends
  (the executor runs them one at a time, in topological order, on the calling thread);
- everything else it says goes through `logging` too (the generated docker-compose file, the config
  files it looked for, the telemetry notice, popped job names), and importing the SDK runs
  `logging.basicConfig(level=INFO)` (sagemaker/core/experiments/_metrics.py), which puts a stderr
  handler on the root logger: that is why botocore's "Found credentials" reached the console;
- each job's container output is read from `docker-compose up` and written with `sys.stdout.write`
  (core/local/image.py `_stream_output`).

`capture_sdk_output` therefore swaps the root logger's handlers for one that writes to the run's
`TaskLog` (runners/task_logs.py, shared with the local runner), points `sys.stdout` at it, and puts
a filter on the pipeline-entities logger that turns the step messages into `StepEvent`s with their
timing. Condition steps are the compiler's gates, not tasks: they get no step line, and one that
ends false is reported as a skipped branch as it ends.
"""

from __future__ import annotations

import logging
import re
import sys
import time
from collections.abc import Callable, Container, Iterator
from contextlib import contextmanager, redirect_stdout
from pathlib import Path

from kubesage.runners.base import Progress, StepEvent
from kubesage.runners.status import StepStatus
from kubesage.runners.task_logs import TaskLog, strip_ansi

SDK_STEP_LOGGER = "sagemaker.mlops.local.pipeline_entities"
_STARTED = re.compile(r"^Starting pipeline step: '(?P<name>[^']+)'")
_SUCCEEDED = re.compile(r"^Pipeline step '(?P<name>[^']+)' SUCCEEDED")
_FAILED = re.compile(r"^Pipeline step '(?P<name>[^']+)' FAILED\. Failure message is: (?P<message>.*)", re.DOTALL)
# The SDK's reason for a failed job names its temporary compose file; the container's exit code is the news.
_COMPOSE_FAILURE = re.compile(r"Failed to run: \[.*?\][.,] Process exited with code: (?P<code>-?\d+)", re.DOTALL)
# docker-compose prefixes each container line with its service's name: `<job>-algo-1-<id> | `.
_COMPOSE_PREFIX = re.compile(r"^\S+-algo-\d+-\S+\s+\|\s?")
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def readable_failure(message: str) -> str:
    """The SDK's failure message with the docker-compose command line replaced by what it means."""
    return _COMPOSE_FAILURE.sub(r"the job's container exited with code \g<code>", message).strip()


class LocalStepEvents(logging.Filter):
    """Turns the SDK's step start/end records into StepEvents (conditions excepted); lets every record through."""

    def __init__(self, progress: Progress, log: TaskLog, conditions: Container[str]) -> None:
        super().__init__()
        self._progress = progress
        self._log = log
        self._conditions = conditions
        self._started: dict[str, float] = {}
        self.failed: dict[str, str] = {}  # step -> the SDK's reason, made readable
        # A condition step's outcome once it ended (None: not known yet); set when the execution exists.
        self.outcome: Callable[[str], bool | None] = lambda _name: None
        self.skipped: list[str] = []  # false conditions reported as they ended

    def filter(self, record: logging.LogRecord) -> bool:
        message = strip_ansi(record.getMessage())
        if started := _STARTED.match(message):
            name = started["name"]
            self._log.current_task = name
            if name not in self._conditions:
                self._started[name] = time.perf_counter()
                self._progress.step(StepEvent(name, StepStatus.STARTED))
        elif ended := _SUCCEEDED.match(message) or _FAILED.match(message):
            name = ended["name"]
            self._log.current_task = None
            failed = "message" in ended.groupdict()
            if failed:
                self.failed[name] = readable_failure(ended["message"])
            if name in self._conditions:
                if not failed and self.outcome(name) is False:
                    self.skipped.append(name)
                    self._progress.step(StepEvent(name, StepStatus.SKIPPED, message="condition is false"))
            else:
                began = self._started.pop(name, None)
                seconds = time.perf_counter() - began if began is not None else None
                self._progress.step(StepEvent(name, StepStatus.FAILED if failed else StepStatus.SUCCEEDED, seconds))
        return True

    def tail(self, step: str) -> list[str]:
        """The last lines step `step`'s job printed (for a failed step's summary), without compose's prefix."""
        return [_COMPOSE_PREFIX.sub("", line) for line in self._log.tail(step)]


class _RecordsToLog(logging.Handler):
    """Log records to the run's log, outside any step's tail: a failed step's last lines are its job's own."""

    def __init__(self, log: TaskLog) -> None:
        super().__init__()
        self._log = log
        self.setFormatter(logging.Formatter(LOG_FORMAT))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = self.format(record)
        except Exception:  # a library's malformed record must not end the run
            self.handleError(record)
            return
        task = self._log.current_task
        self._log.current_task = None
        try:
            self._log.write(text + "\n")
        finally:
            self._log.current_task = task


@contextmanager
def capture_sdk_output(log_path: Path, progress: Progress, conditions: Container[str]) -> Iterator[LocalStepEvents]:
    """Within the block, every log record and `print` of the SDK and its jobs go to `log_path` (and
    Progress.log, which the console shows with --verbose); step starts and ends go to `progress`."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    root = logging.getLogger()
    steps_logger = logging.getLogger(SDK_STEP_LOGGER)
    with log_path.open("w", encoding="utf-8") as target:
        log = TaskLog(target, progress)
        events = LocalStepEvents(progress, log, conditions)
        handler = _RecordsToLog(log)
        # Root handlers swapped, not added to: a handler already there (the SDK's basicConfig from an
        # earlier import, the CLI's) would print the same records on the console. While the root has
        # a handler, the SDK's import-time basicConfig does nothing.
        handlers, level = root.handlers[:], root.level
        root.handlers = [handler]
        root.setLevel(logging.INFO)
        steps_logger.addFilter(events)
        logging.captureWarnings(True)  # the SDK's warnings.warn calls: to the log, not stderr
        try:
            with redirect_stdout(log):
                yield events
        finally:
            logging.captureWarnings(False)
            steps_logger.removeFilter(events)
            root.handlers = handlers
            root.setLevel(level)
            log.write("\n")
            sys.stdout.flush()

"""A run's task log: every line its tasks and libraries print, kept in a file, shown only when asked.

Shared by the runners that execute tasks in (or through) this process, the local runner (KFP's
output) and the SageMaker local-mode runner (the SDK's logging and its containers' output): whole
lines go to the run's log file and to `Progress.log` (the console shows them with `--verbose`), and
the last lines of each task are kept for a failed task's summary.
"""

from __future__ import annotations

import io
import re
import threading
from collections import deque
from typing import TextIO

from kubesage.runners.base import Progress

TAIL_LINES = 15
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def strip_ansi(text: str) -> str:
    return _ANSI.sub("", text)


class TaskLog(io.TextIOBase):
    """A write-only text stream: whole lines to the log file and to `Progress.log`; a tail per task."""

    def __init__(self, target: TextIO, progress: Progress) -> None:
        self._target = target
        self._progress = progress
        self._pending = ""
        self._lock = threading.RLock()
        self._task = threading.local()
        self.tails: dict[str, deque[str]] = {}

    @property
    def current_task(self) -> str | None:
        task: str | None = getattr(self._task, "name", None)
        return task

    @current_task.setter
    def current_task(self, name: str | None) -> None:
        self._task.name = name

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        with self._lock:
            self._target.write(text)
            self._pending += text
            *lines, self._pending = self._pending.split("\n")
            for line in lines:
                self._line(strip_ansi(line))
            if lines:
                self._target.flush()  # so `tail -f` on the log follows the run
        return len(text)

    def flush(self) -> None:
        with self._lock:
            self._target.flush()

    def _line(self, line: str) -> None:
        self._progress.log(line)
        if self.current_task is not None and line.strip():
            self.tails.setdefault(self.current_task, deque(maxlen=TAIL_LINES)).append(line.strip())

    def tail(self, task: str) -> list[str]:
        return list(self.tails.get(task, ()))

"""A Progress that keeps what a runner reports, for tests that assert on its step events and log lines."""

from __future__ import annotations

from kubesage.runners.base import Progress, StepEvent


class RecordingProgress(Progress):
    def __init__(self) -> None:
        self.events: list[StepEvent] = []
        self.lines: list[str] = []

    def step(self, event: StepEvent) -> None:
        self.events.append(event)

    def log(self, line: str) -> None:
        self.lines.append(line)

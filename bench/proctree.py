"""Run a command and sample the resident memory of its whole process tree (RSS summed over the tree).

Shared by the benchmarks that report peak memory of a step or a CLI run: `run_sampled` starts the
command, reads /proc every `interval` seconds for the command and all its descendants, and returns
the wall time, the exit code and the largest sum seen. Sampling can miss a peak shorter than the
interval; 0.1 s is far below the seconds the measured steps take.
"""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Sampled:
    seconds: float
    returncode: int
    peak_rss: int  # bytes
    output: str


def descendants(pid: int) -> list[int]:
    """`pid` and every process below it, from /proc/<pid>/task/*/children."""
    found = [pid]
    index = 0
    while index < len(found):
        current = found[index]
        index += 1
        for task in Path(f"/proc/{current}/task").glob("*"):
            try:
                found.extend(int(p) for p in (task / "children").read_text().split())
            except OSError:
                continue
    return found


def tree_rss(pid: int) -> int:
    total = 0
    for each in descendants(pid):
        try:
            for line in Path(f"/proc/{each}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
                    break
        except OSError:
            pass
    return total


def run_sampled(command: Sequence[str], interval: float = 0.1, env: dict[str, str] | None = None) -> Sampled:
    started = time.perf_counter()
    process = subprocess.Popen(list(command), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    peak = 0
    chunks: list[str] = []
    reader = threading.Thread(target=lambda: chunks.append(process.stdout.read() if process.stdout else ""))
    reader.start()
    while process.poll() is None:
        peak = max(peak, tree_rss(process.pid))
        time.sleep(interval)
    reader.join()
    return Sampled(time.perf_counter() - started, process.returncode, peak, "".join(chunks))

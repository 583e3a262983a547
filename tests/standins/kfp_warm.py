"""The stand-in's warm executor, from the API server's side: runs forked from one process that has
already imported kfp.local, MLflow's client and the churn steps' libraries (kfp_execute.py `--serve`).

`python kfp_execute.py RUN_DIR` per run, and a new fork-server zygote per run, each imported the same
modules again: about 6 s of CPU per run on this machine, for nothing a run can change. Here each run is
a fork of the warm process and each run's zygote a fork of the run, so the run still starts from a
clean state (nothing one run does reaches the next), in its own session, with the environment and
working directory the API server gives it. `WarmRun` answers what the server asks of a run's
`subprocess.Popen` (pid, poll, wait, returncode); the run's process group is killed as before.
"""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any

# What a run that outlived its warm executor reports: the executor's end is the only news there is.
EXECUTOR_GONE = -9


class WarmRun:
    """A run's process, forked by the warm executor (not this process's child): its exit comes from it."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None
        self._ended = threading.Event()

    def ended(self, returncode: int) -> None:
        self.returncode = returncode
        self._ended.set()

    def poll(self) -> int | None:
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if not self._ended.wait(timeout):
            raise subprocess.TimeoutExpired(f"run process {self.pid}", timeout or 0.0)
        assert self.returncode is not None
        return self.returncode


class WarmExecutor:
    """`python kfp_execute.py --serve`, started once; `start_run` forks a run from it."""

    def __init__(self, executor: Path, env: dict[str, str], log_path: Path) -> None:
        self._log = log_path.open("ab")
        self._process = subprocess.Popen(
            [sys.executable, str(executor), "--serve"],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
            bufsize=1,
        )
        self._runs: dict[int, WarmRun] = {}
        self._started: queue.Queue[dict[str, Any]] = queue.Queue()
        self._send = threading.Lock()
        self._reader = threading.Thread(target=self._read, name="kfp-standin-warm-executor", daemon=True)
        self._reader.start()

    def start_run(self, run_dir: Path, env: dict[str, str], timeout: float = 300.0) -> WarmRun:
        """Fork a run of `run_dir` (`python kfp_execute.py RUN_DIR`'s work) with `env` as its environment.

        The first call waits for the executor's imports (a few seconds)."""
        assert self._process.stdin is not None
        with self._send:
            request_id = time.monotonic_ns()
            try:
                self._process.stdin.write(json.dumps({"id": request_id, "run_dir": str(run_dir), "env": env}) + "\n")
                self._process.stdin.flush()
            except OSError as exc:
                raise RuntimeError(f"the stand-in's warm executor is gone ({exc}); see {self._log.name}") from exc
            reply = self._started.get(timeout=timeout)
        if "pid" not in reply or reply.get("id") != request_id:
            raise RuntimeError(f"the stand-in's warm executor did not start the run ({reply}); see {self._log.name}")
        return self._runs.setdefault(reply["pid"], WarmRun(reply["pid"]))

    def stop(self) -> None:
        """Close the executor's input: it ends, killing any run still going (the server killed them first)."""
        if self._process.stdin is not None:
            self._process.stdin.close()
        try:
            self._process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._reader.join(timeout=5)
        self._log.close()

    def _read(self) -> None:
        stdout: IO[str] | None = self._process.stdout
        assert stdout is not None
        for line in stdout:
            message = json.loads(line)
            if "returncode" in message:
                # the exit can be read before start_run stored the run: whoever is first makes it
                self._runs.setdefault(message["pid"], WarmRun(message["pid"])).ended(message["returncode"])
            else:
                self._started.put(message)
        self._started.put({"error": "the warm executor ended"})
        for run in list(self._runs.values()):
            if run.returncode is None:
                run.ended(EXECUTOR_GONE)

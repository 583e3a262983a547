"""A fork server whose zygote is a fork of the calling process (`ForkServer(zygote="fork")`), as the
KFP stand-in's warm executor uses it: tasks start from what that process imported and set."""

from __future__ import annotations

import json
import subprocess
import sys
import threading

import pytest

from kubesage.errors import RunnerError
from kubesage.runners.local.launcher import ForkServer

# Run in a fresh interpreter: a pytest worker has threads of its own, and a zygote is never forked
# from a threaded process. The task's module prints what it found, then exits 3.
SCRIPT = r"""
import json, os, sys
json.kubesage_probe = "set in the process before the fork"
from kubesage.runners.local.launcher import ForkServer, PythonCall
TASK = (
    "import json, sys\n"
    "print('probe:', getattr(json, 'kubesage_probe', None))\n"
    "json.kubesage_probe = 'changed by a task'\n"
    "sys.exit(3)\n"
)
lines = []
with ForkServer(essential=(), zygote="fork") as server:
    call = PythonCall(source=TASK, args=["--executor_input", "{}", "--function_to_execute", "f"])
    codes = [server.run(call, dict(os.environ), os.getcwd(), lines.append) for _ in range(2)]
print(json.dumps({"codes": codes, "probes": [line.strip() for line in lines if line.startswith("probe:")]}))
"""


def test_tasks_start_from_the_forking_process_state_and_not_from_each_other() -> None:
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120, check=True)
    result = json.loads(done.stdout.strip().splitlines()[-1])

    assert result["codes"] == [3, 3]
    # both tasks see the parent's value: the first task's change stayed in its own fork
    assert result["probes"] == ["probe: set in the process before the fork"] * 2


def test_a_threaded_process_is_refused_a_forked_zygote() -> None:
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait, daemon=True)
    thread.start()
    try:
        with pytest.raises(RunnerError, match="single-threaded process"):
            ForkServer(essential=(), zygote="fork").start()
    finally:
        stop.set()
        thread.join()

"""Run the real `kubesage` console script in a working directory of its own."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

KUBESAGE = str(Path(sys.executable).with_name("kubesage"))


@dataclass
class CliResult:
    code: int
    stdout: str
    stderr: str

    @property
    def json(self) -> Any:
        return json.loads(self.stdout)


def run_cli(args: list[str], cwd: Path, tracking_uri: str, timeout: float = 600) -> CliResult:
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking_uri}
    for name in ("KUBESAGE_MLFLOW_PARENT_RUN_ID", "KUBESAGE_MLFLOW_EXPERIMENT_ID", "KUBESAGE_FAILURE_DIR"):
        env.pop(name, None)
    done = subprocess.run(
        [KUBESAGE, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    return CliResult(done.returncode, done.stdout, done.stderr)

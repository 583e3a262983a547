"""How fast a cloud runner refuses to start: `kubesage run --runner sagemaker` without AWS credentials.

Issue 28's goal: under 3 s, one line, no MLflow run (before the preflight it took 12.7 s and left a
FAILED run). Runs the real console script N times in a clean environment (no credentials, no
~/.aws, no instance metadata) and prints the wall times beside the goal.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

KUBESAGE = str(Path(sys.executable).with_name("kubesage"))
DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "churn.txt"
GOAL_SECONDS = 3.0


def once(workdir: Path) -> tuple[float, int, list[str], bool]:
    store = workdir / "mlflow.db"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_") or k == "AWS_CA_BUNDLE"}
    env.update(
        MLFLOW_TRACKING_URI=f"sqlite:///{store}",
        AWS_SHARED_CREDENTIALS_FILE=str(workdir / "none"),
        AWS_CONFIG_FILE=str(workdir / "none"),
        AWS_EC2_METADATA_DISABLED="true",
    )
    data = DATA if DATA.is_file() else workdir / "churn.csv"
    data.touch()
    args = [KUBESAGE, "run", "customer_churn", "--runner", "sagemaker", "--param", f"input_data={data}"]
    started = time.perf_counter()
    done = subprocess.run(args, cwd=workdir, env=env, capture_output=True, text=True, check=False)
    return time.perf_counter() - started, done.returncode, done.stderr.strip().splitlines(), store.exists()


def main(runs: int = 5) -> int:
    seconds = []
    with tempfile.TemporaryDirectory(prefix="kubesage-bench-preflight-") as tmp:
        for _ in range(runs):
            wall, code, lines, recorded = once(Path(tmp))
            if code != 1 or len(lines) != 1 or recorded:
                print(f"unexpected: exit {code}, {len(lines)} lines, store created: {recorded}\n" + "\n".join(lines))
                return 1
            seconds.append(wall)
    print(f"--runner sagemaker without credentials, {runs} runs: median {statistics.median(seconds):.2f} s, "
          f"max {max(seconds):.2f} s (goal < {GOAL_SECONDS:.0f} s); exit 1, one line, nothing recorded")  # fmt: skip
    print(f"  {lines[0]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Run every benchmark in one go (`make bench`); each prints its own side-by-side table."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHMARKS = [
    "bench_inference.py",
    "bench_pipeline.py",
    "bench_serving.py",
    "bench_capture.py",
    "bench_api.py",
    "bench_api_abuse.py",
    "bench_preflight.py",
    "bench_scoring.py",  # 1M and 10M rows: several minutes and about 4 GB of temporary files
    "bench_pipeline_scale.py",  # 1M rows
]


def main() -> int:
    failed = []
    for name in BENCHMARKS:
        print(f"\n=== {name} ===", flush=True)
        if subprocess.run([sys.executable, str(HERE / name)], check=False).returncode != 0:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

"""One pipeline run's worth of tracking calls, as a separate process (run by test_concurrent_sqlite)."""

from __future__ import annotations

import os
import sys

from kubesage import tracking as t


def main(uri: str, name: str) -> None:
    run = t.start_pipeline_run(name, "local", {"seed": 1}, uri=uri)
    os.environ.update(run.step_env)
    for step in ("preprocess", "train", "evaluate"):
        with t.step_run(step) as tracker:
            tracker.log_params({f"p{i}": i for i in range(10)})
            tracker.log_metrics({f"m{i}": float(i) for i in range(10)}, also_parent=True)
            tracker.set_tags({"kubesage.test": step}, also_parent=True)
    t.finish_pipeline_run(run, "FINISHED")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])

"""A pipeline run through the Python API in the test process, as `kubesage run` would make it from a
working directory: for the tests that need a run to read, not the command line's own behaviour.

`kubesage.sdk.run` is what the command calls, and its `to_dict()` is the command's JSON. In the test
process the run reuses the process's warm fork server (runners/local/warm.py): a new command would
pay its own start-up (~2 s of CPU importing MLflow and KFP) and a new zygote (~4 s) per run.
tests/integration/test_demo_output.py runs the command itself, and test_local_pipeline.py for a failing
run, refused parameters and a cached rerun.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from kubesage.util.environment import environment


def run_in_workdir(pipeline: str, workdir: Path, tracking_uri: str, params: dict[str, str]) -> dict[str, Any]:
    """Run `pipeline` on the local runner from `workdir` into `tracking_uri`; its result, which must
    have succeeded. Relative paths (the pipeline root, the compiled IR) resolve in `workdir`."""
    from kubesage import sdk

    with contextlib.chdir(workdir), environment({"MLFLOW_TRACKING_URI": tracking_uri}):
        result = sdk.run(pipeline, params=params)
    found: dict[str, Any] = result.to_dict()
    assert found["status"] == "succeeded", found
    return found

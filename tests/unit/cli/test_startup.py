"""A command starts at once: importing the CLI loads none of the libraries only some commands need.

`kubesage --help`, `approve` or `runs` took ~4 s here while `kubesage.tracking` imported MLflow (and
with it pandas, scipy, boto3 and FastAPI) at module level; each command imports them when it runs.
"""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("boto3", "daal4py", "kfp", "mlflow", "pandas", "sagemaker", "scipy", "sklearn", "xgboost")


def test_importing_the_cli_loads_no_heavy_library() -> None:
    probe = f"import json, sys, kubesage.cli.app; print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert json.loads(done.stdout) == []

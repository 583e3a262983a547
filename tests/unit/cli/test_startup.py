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


def _seen_at_exit(expression: str) -> str:
    """What `expression` is at the exit of `kubesage runners` in a new process, printed by an exit
    handler registered before the command's (so run after them)."""
    probe = (
        "import atexit, gc\n"
        f"atexit.register(lambda: print('seen at exit:', {expression}))\n"
        "from kubesage.cli import main\n"
        "main(['runners'])\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout.rsplit("seen at exit:", 1)[1].strip()


def test_a_command_leaves_its_objects_to_the_exit_not_to_the_garbage_collector() -> None:
    """`kubesage.cli.app.skip_garbage_collection_at_exit`: the cycle collection over MLflow's, KFP's
    and pandas' objects cost 0.8-0.9 s of CPU at each `kubesage run`'s exit. The exit handler sees the
    objects frozen."""
    assert int(_seen_at_exit("gc.get_freeze_count()")) > 10_000


def test_a_command_collects_young_objects_after_10000_allocations_not_700() -> None:
    """`kubesage.cli.app.collect_garbage_less_often`: with Python's 700, a `kubesage run` made seven
    full collections while it imported MLflow, KFP and pandas (0.85 s of its 5 s of CPU)."""
    assert _seen_at_exit("gc.get_threshold()") == "(10000, 10, 10)"

"""Temporary folders that last as long as the process that made them.

A command that downloads a model or a data file for its own use (`kubesage score`, `serve`,
`drift`...) needs the copy until it exits, and no longer: left in the temporary folder, every
call added one more copy of the model there.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path


def process_temp_dir(prefix: str) -> Path:
    """A new temporary folder, removed when this process exits (by returning or `sys.exit`, and so
    on SIGTERM where the process turns it into an exit, as uvicorn does). A process forked from this
    one keeps it: only the process that made it removes it."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    atexit.register(_remove_if_ours, path, os.getpid())
    return path


def _remove_if_ours(path: Path, owner: int) -> None:
    if os.getpid() == owner:
        shutil.rmtree(path, ignore_errors=True)

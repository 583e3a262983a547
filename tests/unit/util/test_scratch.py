"""process_temp_dir: a command's downloaded copy lasts as long as the command, in a real process."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

PROGRAM = """
import os, sys
from kubesage.util.scratch import process_temp_dir

folder = process_temp_dir("kubesage-model-")
(folder / "model.ubj").write_bytes(b"weights")
child = os.fork()
if child == 0:
    sys.exit(0)  # a forked process runs the exit handlers it inherited: the folder is not its own
os.waitpid(child, 0)
print(folder, folder.exists(), flush=True)
"""


def test_the_folder_outlives_a_forked_child_and_goes_with_the_process(tmp_path: Path) -> None:
    env = {"TMPDIR": str(tmp_path), "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-c", PROGRAM], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    folder, existed_after_child = done.stdout.split()
    assert Path(folder).parent == tmp_path and Path(folder).name.startswith("kubesage-model-")
    assert existed_after_child == "True"
    assert list(tmp_path.iterdir()) == []

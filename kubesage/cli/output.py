"""How every command reports: errors as one redacted line (or one JSON object), progress on stderr.

Errors the user can fix print one line (no traceback) and exit with the error's code. `--output json`
prints one JSON object on stdout and sends everything else (task logs, progress) to stderr.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NoReturn

import click
from rich.console import Console
from rich.markup import escape

from kubesage.errors import KubesageError
from kubesage.util.redact import redact_text

err_console = Console(stderr=True)


def fail(exc: KubesageError, as_json: bool = False) -> NoReturn:
    """Report `exc` and exit with its code: `error: MESSAGE` on stderr, and with `as_json` also
    `{"status": "error", "error": MESSAGE, "kind": CLASS}` on stdout."""
    # Messages may quote a tracking or data URI: never print the credentials in one.
    message = redact_text(str(exc))
    if as_json:
        click.echo(json.dumps({"status": "error", "error": message, "kind": type(exc).__name__}))
    # soft_wrap: one line whatever the terminal width, so scripts and logs see the whole message
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    sys.exit(exc.exit_code)


@contextmanager
def stdout_to_stderr() -> Iterator[None]:
    """Route fd 1 to fd 2 so subprocess and library output cannot corrupt the JSON on stdout."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def quiet_library_logs() -> None:
    """Keep libraries' INFO lines off the console: Python's own default, whatever a library configures.

    Importing the SageMaker SDK calls `logging.basicConfig(level=INFO)` (sagemaker/core/experiments/
    _metrics.py): a stderr handler at INFO on the root logger, through which botocore's "Found
    credentials" and the SDK's config search reached every command's console. basicConfig does nothing
    once the root logger has a handler, so the CLI installs one first: `logging.lastResort`, the handler
    Python uses when none is configured (warnings and errors, bare, on the current stderr). A run keeps
    every record in its log file (runners/task_logs.py).
    """
    root = logging.getLogger()
    if not root.handlers:
        root.addHandler(logging.lastResort or logging.StreamHandler())

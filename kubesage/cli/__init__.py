"""The `kubesage` command line: one module per command group over the package's functions."""

from kubesage.cli.app import main

__all__ = ["main"]

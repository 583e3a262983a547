"""The `kubesage` command line: one module per command group over the package's functions."""

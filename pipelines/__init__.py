"""kubesage."""

"""Small utilities every layer may use: botocore errors mapped, environment, loopback ports, redaction."""

"""The request path on one machine: a local API Gateway front over the Lambda handler, and `make demo`'s tail."""

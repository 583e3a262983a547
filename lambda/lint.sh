#!/usr/bin/env bash
# `make lint` for lambda/: cfn-lint on the CloudFormation template, then its IAM policies through the
# project's one IAM linter (scripts/lint_policies.py: parliament + kubesage's least-privilege rules).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="$ROOT/.venv/bin"
"$BIN/cfn-lint" "$ROOT/lambda/template.yaml"
# parliament imports pkg_resources, which warns on import; the warning is not a finding.
"$BIN/python" -W ignore::UserWarning "$ROOT/scripts/lint_policies.py" "$ROOT/lambda/template.yaml"

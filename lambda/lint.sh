#!/usr/bin/env bash
# `make lint` for lambda/: cfn-lint on the CloudFormation template, then the offline IAM policy check
# (parliament + no wildcard action on a wildcard resource + trust policies pinned to the account).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="$ROOT/.venv/bin"
"$BIN/cfn-lint" "$ROOT/lambda/template.yaml"
# parliament imports pkg_resources, which warns on import; the warning is not a finding.
"$BIN/python" -W ignore::UserWarning -m kubesage.deploy.policies "$ROOT/lambda/template.yaml"

"""The template's IAM policies through the one IAM linter (scripts/lint_policies.py), as lambda/lint.sh runs it."""

from __future__ import annotations

import copy
import importlib.util
import subprocess
import sys
from types import ModuleType

from kubesage.deploy.template import TEMPLATE_PATH, load_template
from tests.paths import REPO_ROOT

SCRIPT = REPO_ROOT / "scripts" / "lint_policies.py"


def _linter() -> ModuleType:
    spec = importlib.util.spec_from_file_location("lint_policies", SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


LINT = _linter()


def test_the_template_lints_clean_and_a_wildcard_is_caught() -> None:
    template = load_template()
    assert LINT.lint_template(template) == []
    loose = copy.deepcopy(template)
    role = loose["Resources"]["FunctionRole"]["Properties"]
    role["Policies"][0]["PolicyDocument"]["Statement"][0].update(Action="sagemaker:*", Resource="*")
    del role["AssumeRolePolicyDocument"]["Statement"][0]["Condition"]
    found = LINT.lint_template(loose)
    assert "FunctionRole/invoke-endpoint: wildcard action ['sagemaker:*'] on a wildcard resource" in found
    assert any(f.startswith("FunctionRole/invoke-endpoint: parliament") and "RESOURCE_STAR" in f for f in found)
    assert any("aws:SourceAccount" in f for f in found)


def test_the_trust_policy_names_its_one_service_and_the_account() -> None:
    template = load_template()
    trust = template["Resources"]["FunctionRole"]["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]
    trust["Principal"] = {"Service": "sagemaker.amazonaws.com"}
    trust["Condition"]["StringEquals"]["aws:SourceAccount"] = "999999999999"
    assert LINT.lint_template(template) == [
        "FunctionRole/AssumeRolePolicyDocument: trust only the lambda.amazonaws.com service principal, "
        "got {'Service': 'sagemaker.amazonaws.com'}",
        "FunctionRole/AssumeRolePolicyDocument: aws:SourceAccount is '999999999999', not the account "
        "(111122223333) the role is in",
    ]


def test_one_command_lints_both_sources() -> None:
    done = subprocess.run(
        [sys.executable, "-W", "ignore::UserWarning", str(SCRIPT)], capture_output=True, text=True, cwd=REPO_ROOT
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"policy-lint: 5 policies in {REPO_ROOT / 'runners' / 'sagemaker' / 'iam'}, 0 findings" in done.stderr
    assert f"policy-lint: 6 policies in {TEMPLATE_PATH}, 0 findings" in done.stderr

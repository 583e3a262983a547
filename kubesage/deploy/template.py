"""The CloudFormation template (lambda/template.yaml): read it, and render what `kubesage deploy` sends.

The template is plain CloudFormation in YAML with short-form intrinsics (!Ref, !GetAtt, !Sub);
`load_template` reads them into their JSON form with PyYAML. Rendering renames the API's
Deployment after a hash of the methods and resources it deploys: CloudFormation only creates a new
API Gateway deployment when that logical id changes, so without it a changed method never goes live.
"""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path
from typing import Any

import yaml

from kubesage.deploy.strategy import Strategy, deployment_config

DEPLOYMENT_ID = "ApiDeployment"
ENDPOINT_ID = "Endpoint"
DEPLOYED_TYPES = ("AWS::ApiGateway::Method", "AWS::ApiGateway::Resource")
TEMPLATE_PATH = Path(__file__).resolve().parents[2] / "lambda" / "template.yaml"
_TAGS = {
    "!Ref": "Ref",
    "!GetAtt": "Fn::GetAtt",
    "!Sub": "Fn::Sub",
    "!Join": "Fn::Join",
    "!Select": "Fn::Select",
    "!Split": "Fn::Split",
    "!If": "Fn::If",
    "!Equals": "Fn::Equals",
    "!Not": "Fn::Not",
    "!And": "Fn::And",
    "!Or": "Fn::Or",
    "!FindInMap": "Fn::FindInMap",
    "!GetAZs": "Fn::GetAZs",
    "!Base64": "Fn::Base64",
    "!ImportValue": "Fn::ImportValue",
    "!Condition": "Condition",
}


class _Loader(yaml.SafeLoader):
    """SafeLoader plus CloudFormation's short-form intrinsic functions."""


def _intrinsic(name: str) -> Any:
    def construct(loader: yaml.SafeLoader, node: yaml.Node) -> dict[str, Any]:
        value: Any
        if isinstance(node, yaml.ScalarNode):
            value = loader.construct_scalar(node)
            if name == "Fn::GetAtt":
                value = str(value).split(".", 1)
        elif isinstance(node, yaml.SequenceNode):
            value = loader.construct_sequence(node, deep=True)
        else:
            value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type,unused-ignore]
        return {name: value}

    return construct


for _tag, _name in _TAGS.items():
    _Loader.add_constructor(_tag, _intrinsic(_name))


def load_template(path: str | Path = TEMPLATE_PATH) -> dict[str, Any]:
    source = Path(path)
    if not source.is_file():
        from kubesage.errors import DeployError

        raise DeployError(f"no template at {source}; run kubesage from its source checkout (lambda/template.yaml)")
    loaded: dict[str, Any] = yaml.load(source.read_text(encoding="utf-8"), Loader=_Loader)
    return loaded


def deployment_hash(template: dict[str, Any]) -> str:
    deployed = {
        name: resource
        for name, resource in sorted(template["Resources"].items())
        if resource.get("Type") in DEPLOYED_TYPES
    }
    return hashlib.sha256(json.dumps(deployed, sort_keys=True).encode()).hexdigest()[:10]


# The drift schedule's resources (lambda/template.yaml) carry this condition.
SCHEDULE_CONDITION = "ScheduleMonitoring"


def render(template: dict[str, Any], strategy: Strategy | None = None, schedule: bool = True) -> dict[str, Any]:
    """A copy with ApiDeployment renamed ApiDeployment<hash> and every reference to it updated, and
    the endpoint's DeploymentConfig set to `strategy` (None: the template's own, a 10% canary).

    `schedule=False` leaves the drift schedule's resources out: a stack deployed without a
    monitoring pipeline has none to update (moto 5.2 also "modifies" a resource whose condition is
    false when a parameter it names changes, and fails on it).
    """
    rendered = copy.deepcopy(template)
    resources = rendered["Resources"]
    if not schedule:
        for name in [n for n, r in resources.items() if r.get("Condition") == SCHEDULE_CONDITION]:
            del resources[name]
    if strategy is not None:
        endpoint = resources[ENDPOINT_ID]["Properties"]
        alarms = [a["AlarmName"] for a in endpoint["DeploymentConfig"]["AutoRollbackConfiguration"]["Alarms"]]
        endpoint["DeploymentConfig"] = deployment_config(strategy, alarms)
    new_id = f"{DEPLOYMENT_ID}{deployment_hash(template)}"
    resources[new_id] = resources.pop(DEPLOYMENT_ID)
    renamed: dict[str, Any] = _rename_refs(rendered, DEPLOYMENT_ID, new_id)
    return renamed


def _rename_refs(node: Any, old: str, new: str) -> Any:
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for key, value in node.items():
            if key == "Ref" and value == old:
                out[key] = new
            elif key == "DependsOn" and (value == old or (isinstance(value, list) and old in value)):
                out[key] = new if value == old else [new if v == old else v for v in value]
            else:
                out[key] = _rename_refs(value, old, new)
        return out
    if isinstance(node, list):
        return [_rename_refs(v, old, new) for v in node]
    return node


def iam_policies(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every IAM policy document in the template, by '<resource>/<policy name>' (trust policies too)."""
    found: dict[str, dict[str, Any]] = {}
    for name, resource in template["Resources"].items():
        if resource.get("Type") == "AWS::IAM::Policy":  # a policy the stack adds to a role it does not own
            found[f"{name}/PolicyDocument"] = resource["Properties"]["PolicyDocument"]
        if resource.get("Type") != "AWS::IAM::Role":
            continue
        props = resource.get("Properties", {})
        found[f"{name}/AssumeRolePolicyDocument"] = props["AssumeRolePolicyDocument"]
        for policy in props.get("Policies", []):
            found[f"{name}/{policy['PolicyName']}"] = policy["PolicyDocument"]
    return found

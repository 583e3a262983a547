"""One API key per client, issued into and revoked from the stack's usage plan.

API Gateway applies a usage plan's throttle and daily quota to each key separately, so a key per
client gives each client its own limits, and revoking one client (deleting its key) leaves the
others working. Keys are named `<stack>-client-<client>` and tagged with the stack and the client;
the stack's own key (`ApiKey` in the template) stays for the operator.

For stronger needs than a shared secret in a header: IAM authorization (`AuthorizationType: AWS_IAM`
on the method, callers sign with SigV4) or a Lambda authorizer (tokens from your identity provider);
neither is set up here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from kubesage.errors import DeployError
from kubesage.util.aws import aws_call as shared_aws_call

_CLIENT = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")


@dataclass(frozen=True)
class ClientKey:
    client: str
    key_id: str
    name: str
    value: str | None = None  # only when just issued: the one time kubesage prints it

    def to_dict(self) -> dict[str, str | None]:
        return {"client": self.client, "key_id": self.key_id, "name": self.name, "value": self.value}


def key_name(stack: str, client: str) -> str:
    if not _CLIENT.fullmatch(client):
        raise DeployError(f"client name {client!r}: use 1-63 lower-case letters, digits and dashes")
    return f"{stack}-client-{client}"


def _apigateway(region: str | None) -> Any:
    import boto3

    return boto3.client("apigateway", region_name=region)


def usage_plan_id(stack: str, region: str | None) -> str:
    """The stack's usage plan (the UsagePlan resource's physical id)."""
    import boto3

    cfn = boto3.client("cloudformation", region_name=region)
    with shared_aws_call(f"cloudformation:DescribeStackResource {stack} UsagePlan", DeployError):
        found = cfn.describe_stack_resource(StackName=stack, LogicalResourceId="UsagePlan")
    return str(found["StackResourceDetail"]["PhysicalResourceId"])


def issue_key(stack: str, client: str, plan_id: str, region: str | None = None) -> ClientKey:
    """A new enabled key for `client` in the usage plan; DeployError if the client already has one."""
    name = key_name(stack, client)
    gateway = _apigateway(region)
    if _find(gateway, name) is not None:
        raise DeployError(f"client {client!r} already has a key ({name}); revoke it first to issue a new one")
    with shared_aws_call(f"apigateway:CreateApiKey {name}", DeployError):
        key = gateway.create_api_key(name=name, enabled=True, tags={"kubesage:stack": stack, "kubesage:client": client})
    with shared_aws_call(f"apigateway:CreateUsagePlanKey {name}", DeployError):
        gateway.create_usage_plan_key(usagePlanId=plan_id, keyId=key["id"], keyType="API_KEY")
    return ClientKey(client, str(key["id"]), name, str(key["value"]))


def revoke_key(stack: str, client: str, region: str | None = None) -> ClientKey:
    """Delete the client's key: API Gateway refuses it from then on (after its cache, up to a minute)."""
    name = key_name(stack, client)
    gateway = _apigateway(region)
    key = _find(gateway, name)
    if key is None:
        raise DeployError(f"client {client!r} has no key in stack {stack} ({name}); `kubesage api-key list` shows them")
    with shared_aws_call(f"apigateway:DeleteApiKey {name}", DeployError):
        gateway.delete_api_key(apiKey=key["id"])
    return ClientKey(client, str(key["id"]), name)


def list_keys(stack: str, region: str | None = None) -> list[ClientKey]:
    prefix = f"{stack}-client-"
    gateway = _apigateway(region)
    with shared_aws_call("apigateway:GetApiKeys", DeployError):
        pages = gateway.get_paginator("get_api_keys").paginate(nameQuery=prefix)
        items = [item for page in pages for item in page.get("items", [])]
    return sorted(
        (ClientKey(i["name"].removeprefix(prefix), i["id"], i["name"]) for i in items if i["name"].startswith(prefix)),
        key=lambda k: k.client,
    )


def _find(gateway: Any, name: str) -> dict[str, Any] | None:
    with shared_aws_call("apigateway:GetApiKeys", DeployError):
        pages = gateway.get_paginator("get_api_keys").paginate(nameQuery=name)
        items = [item for page in pages for item in page.get("items", [])]
    return next((i for i in items if i.get("name") == name), None)

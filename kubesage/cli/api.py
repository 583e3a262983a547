"""`kubesage api`, `deploy`, `rollback`, `approve` and `api-key`: thin click adapters."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import click

from kubesage.cli.options import output_option
from kubesage.cli.output import fail
from kubesage.errors import KubesageError

ENV_API_KEY = "KUBESAGE_API_KEY"  # kubesage.local_api.gateway.ENV_API_KEY, without importing it for --help


@click.command("api")
@click.option("--endpoint-url", required=True, help="Where the sagemaker-runtime client goes: kubesage serve's URL.")
@click.option("--endpoint-name", default="kubesage-local", show_default=True, help="The endpoint name to invoke.")
@click.option(
    "--model",
    "model",
    default=None,
    help="models:/NAME/VERSION or a model dir (schema, threshold); default: the newest customer-churn version.",
)
@click.option("--port", type=click.IntRange(1, 65535), default=3000, show_default=True)
@click.option(
    "--api-key-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help=f"A file holding the key clients send as x-api-key (else ${ENV_API_KEY}; else generated). "
    "Not an argument: arguments show in `ps`.",
)
@click.option("--container", is_flag=True, help="Run the handler in the Lambda image under the emulator (Docker).")
@click.option(
    "--canary-endpoint-url",
    default=None,
    help="A second `kubesage serve` (the new version): a canary share of traffic goes to it, and a local alarm "
    "on its 5xx rate and latency rolls the split back (a stand-in for SageMaker's guardrails).",
)
@click.option("--canary-percent", type=int, default=10, show_default=True, help="The new version's share, 1-50%.")
@click.option(
    "--bake-requests", type=int, default=20, show_default=True, help="New-version answers before it takes all traffic."
)
@click.option("--min-requests", type=int, default=5, show_default=True, help="New-version answers the alarm waits for.")
@click.option("--max-5xx-rate", type=float, default=0.05, show_default=True, help="The alarm's 5xx share (0-1).")
@click.option("--max-latency-ms", type=float, default=1000.0, show_default=True, help="The alarm's mean latency.")
def api_command(
    endpoint_url: str,
    endpoint_name: str,
    model: str | None,
    port: int,
    api_key_file: Path | None,
    container: bool,
    canary_endpoint_url: str | None,
    **split_options: Any,
) -> None:
    """Serve POST /predict on 127.0.0.1 as API Gateway would, in front of the Lambda handler."""
    from kubesage.deploy.bundle import bundle_from_model
    from kubesage.local_api.front import GatewayServer, LambdaContainer, SplitServer, in_process_api
    from kubesage.local_api.gateway import InProcessInvoker, LambdaInvoker, generate_api_key, read_api_key
    from kubesage.local_api.split import SplitConfig, TrafficSplit

    split = None
    try:
        if canary_endpoint_url:
            config = SplitConfig(**split_options)
            config.check()
            split = TrafficSplit(endpoint_url, canary_endpoint_url, config)
            router = SplitServer(split).start()
            click.echo(f"{split.snapshot()['summary']} (state: GET /_kubesage/traffic)", err=True)
            endpoint_url = router.url
        key = read_api_key(api_key_file, os.environ)
        if key is None:
            key = generate_api_key()
            click.echo(f"API key (generated; send it as x-api-key): {key}", err=True)
        if model is None:
            from kubesage.local_api.demo import latest_model

            model = latest_model()
        bundle = bundle_from_model(model)
        if container:
            runtime = LambdaContainer(bundle, endpoint_url, endpoint_name).start()
            invoke = LambdaInvoker(runtime.url)
        else:
            invoke = InProcessInvoker(in_process_api(bundle, endpoint_url, endpoint_name))  # type: ignore[assignment]
        gateway = GatewayServer(invoke, key, port=port, split=split)
    except KubesageError as exc:
        fail(exc)
    where = "the Lambda image under the emulator" if container else "in-process"
    click.echo(
        f"POST http://127.0.0.1:{port}/predict -> handler ({where}; {bundle.model}, threshold "
        f"{bundle.decision_threshold:g}) -> {endpoint_url} endpoint '{endpoint_name}'",
        err=True,
    )
    try:
        gateway.serve_forever()
    finally:
        if container:
            runtime.stop()
        if split is not None:
            router.stop()


@click.command("approve")
@click.argument("model_package_arn")
@click.option("--region", default=None)
@output_option
def approve_command(model_package_arn: str, region: str | None, output_format: str) -> None:
    """Approve a SageMaker model package so `kubesage deploy` accepts it."""
    from kubesage.deploy.stack import approve_model_package

    try:
        status = approve_model_package(model_package_arn, region=region)
    except KubesageError as exc:
        fail(exc, as_json=output_format == "json")
    if output_format == "json":
        click.echo(json.dumps({"model_package": model_package_arn, "status": status}))
    else:
        click.echo(f"{model_package_arn}: {status}")


def _rollout_options(function: Any) -> Any:
    """The rollout's strategy, sizes, bake time and alarm thresholds (checked against AWS's ranges)."""
    options = [
        click.option(
            "--strategy",
            type=click.Choice(["all-at-once", "canary", "linear", "rolling"]),
            default="canary",
            show_default=True,
            help="How an update shifts traffic to the new version; every kind rolls back when an alarm fires.",
        ),
        click.option("--canary-percent", type=int, default=10, show_default=True, help="canary: 1-50% of capacity."),
        click.option("--linear-percent", type=int, default=20, show_default=True, help="linear: steps of 10-50%."),
        click.option("--rolling-percent", type=int, default=25, show_default=True, help="rolling: batches of 5-50%."),
        click.option(
            "--bake-seconds", type=int, default=600, show_default=True, help="0-3600 s watched after each shift."
        ),
        click.option(
            "--timeout-seconds", type=int, default=None, help="600-28800 s, above the waits; default: waits + 600."
        ),
        click.option("--termination-wait-seconds", type=int, default=0, show_default=True, help="0-3600 s."),
        click.option(
            "--max-5xx-rate", type=float, default=0.05, show_default=True, help="5xx share that rolls back (0-1)."
        ),
        click.option(
            "--max-latency-ms",
            type=float,
            default=1000.0,
            show_default=True,
            help="Mean latency that rolls back.",
        ),
    ]
    for option in reversed(options):
        function = option(function)
    return function


def _rollout(values: dict[str, Any]) -> tuple[Any, Any]:
    from kubesage.deploy.strategy import Strategy, Thresholds

    strategy = Strategy(
        name=values.pop("strategy"),
        canary_percent=values.pop("canary_percent"),
        linear_percent=values.pop("linear_percent"),
        rolling_percent=values.pop("rolling_percent"),
        bake_seconds=values.pop("bake_seconds"),
        timeout_seconds=values.pop("timeout_seconds"),
        termination_wait_seconds=values.pop("termination_wait_seconds"),
    )
    thresholds = Thresholds(max_5xx_rate=values.pop("max_5xx_rate"), max_latency_ms=values.pop("max_latency_ms"))
    return strategy, thresholds


def _report(result: Any, output_format: str) -> None:
    if output_format == "json":
        click.echo(json.dumps(result.to_dict(), indent=2))
        return
    click.echo(f"stack {result.stack_name}: {result.status}")
    if result.endpoint_config:
        click.echo(f"endpoint {result.endpoint_name} serves config {result.endpoint_config} ({result.serving_package})")
    for alarm in result.alarms:
        click.echo(f"alarm {alarm.name} fired: {alarm.reason}")
    if not result.rolled_back and result.status != "FAILED":
        click.echo(f"API: POST {result.api_url}")
        click.echo(f"API key: {result.key_command}")


def _run_rollout(run: Any, output_format: str) -> None:
    """Run a deploy or rollback; a rolled-back update prints its report and exits non-zero."""
    from kubesage.deploy.stack import RolledBackError

    try:
        result = run()
    except RolledBackError as exc:
        _report(exc.result, output_format)
        fail(exc, as_json=False)
    except KubesageError as exc:
        fail(exc, as_json=output_format == "json")
    _report(result, output_format)


@click.command("deploy")
@click.option("--model-package", "model_package_arn", required=True, help="An Approved SageMaker model package ARN.")
@click.option("--model", "model", required=True, help="Its registered model (models:/NAME/VERSION): schema, threshold.")
@click.option("--stack-name", default="kubesage-churn", show_default=True)
@click.option("--execution-role", "execution_role_arn", required=True, help="The SageMaker model's execution role.")
@click.option("--bucket", required=True, help="S3 bucket for the Lambda zip (by content hash) and data capture.")
@click.option("--instance-type", default="ml.m5.large", show_default=True)
@click.option("--region", default=None)
@click.option("--template-only", type=click.Path(dir_okay=False), default=None, help="Write the rendered template.")
@_rollout_options
@click.option(
    "--monitoring-pipeline",
    default="",
    help="An upserted monitor_churn SageMaker pipeline: EventBridge runs it hourly on the endpoint's captures.",
)
@output_option
def deploy_command(
    model_package_arn: str,
    model: str,
    stack_name: str,
    execution_role_arn: str,
    bucket: str,
    instance_type: str,
    region: str | None,
    template_only: str | None,
    monitoring_pipeline: str,
    output_format: str,
    **rollout: Any,
) -> None:
    """Create the API stack, or update it to a new approved version through a change set and guardrails.

    An update shifts traffic by --strategy, follows the endpoint to the end and judges by the config
    it serves: a rollback (an alarm fired) prints which alarm and exits 1, and the registry keeps
    recording the previous version as live.
    """
    from kubesage.deploy.stack import DeployRequest, deploy, render_template

    try:
        strategy, thresholds = _rollout(rollout)
        if template_only:
            Path(template_only).write_text(render_template(strategy, thresholds), encoding="utf-8")
            click.echo(f"wrote {template_only}", err=True)
            return
    except KubesageError as exc:
        fail(exc, as_json=output_format == "json")
    request = DeployRequest(
        stack_name=stack_name,
        model_package_arn=model_package_arn,
        model=model,
        execution_role_arn=execution_role_arn,
        bucket=bucket,
        instance_type=instance_type,
        region=region,
        strategy=strategy,
        thresholds=thresholds,
        monitoring_pipeline=monitoring_pipeline,
    )
    _run_rollout(lambda: deploy(request, progress=lambda message: click.echo(message, err=True)), output_format)


@click.command("rollback")
@click.option("--stack-name", default="kubesage-churn", show_default=True)
@click.option("--region", default=None)
@click.option(
    "--local-api",
    default=None,
    help="Roll back the traffic split of a local `kubesage api` at this URL instead (its key from "
    f"--api-key-file or ${ENV_API_KEY}).",
)
@click.option("--api-key-file", type=click.Path(dir_okay=False, path_type=Path), default=None)
@_rollout_options
@output_option
def rollback_command(
    stack_name: str,
    region: str | None,
    local_api: str | None,
    api_key_file: Path | None,
    output_format: str,
    **rollout: Any,
) -> None:
    """Return the endpoint to the version live before the current one, through the same guarded path."""
    if local_api:
        from kubesage.local_api.gateway import read_api_key
        from kubesage.local_api.split import rollback_local

        try:
            key = read_api_key(api_key_file, os.environ)
            if key is None:
                raise KubesageError(f"the local API's key is needed: --api-key-file or ${ENV_API_KEY}")
            state = rollback_local(local_api, key)
        except KubesageError as exc:
            fail(exc, as_json=output_format == "json")
        click.echo(json.dumps(state, indent=2) if output_format == "json" else state["summary"])
        return
    from kubesage.deploy.stack import RollbackRequest, rollback

    try:
        strategy, thresholds = _rollout(rollout)
    except KubesageError as exc:
        fail(exc, as_json=output_format == "json")
    request = RollbackRequest(stack_name=stack_name, region=region, strategy=strategy, thresholds=thresholds)
    _run_rollout(lambda: rollback(request, progress=lambda message: click.echo(message, err=True)), output_format)


@click.group("api-key")
def api_key_group() -> None:
    """Per-client API keys of a deployed API: each its own throttle and quota, revocable alone."""


def _key_options(function: Any) -> Any:
    function = click.option("--region", default=None)(function)
    function = click.option("--stack-name", default="kubesage-churn", show_default=True)(function)
    return function


@api_key_group.command("issue")
@click.argument("client")
@_key_options
@click.option("--usage-plan-id", default=None, help="Default: the stack's UsagePlan.")
def api_key_issue(client: str, stack_name: str, region: str | None, usage_plan_id: str | None) -> None:
    """Issue a key for CLIENT in the stack's usage plan; prints its value once (to stdout only)."""
    from kubesage.deploy import keys

    try:
        plan = usage_plan_id or keys.usage_plan_id(stack_name, region)
        issued = keys.issue_key(stack_name, client, plan, region)
    except KubesageError as exc:
        fail(exc)
    click.echo(f"issued key {issued.key_id} ({issued.name}) for client {client!r}; its value, shown once:", err=True)
    click.echo(issued.value)


@api_key_group.command("revoke")
@click.argument("client")
@_key_options
def api_key_revoke(client: str, stack_name: str, region: str | None) -> None:
    """Delete CLIENT's key; the API refuses it from then on."""
    from kubesage.deploy import keys

    try:
        revoked = keys.revoke_key(stack_name, client, region)
    except KubesageError as exc:
        fail(exc)
    click.echo(f"revoked key {revoked.key_id} ({revoked.name}) of client {client!r}")


@api_key_group.command("list")
@_key_options
def api_key_list(stack_name: str, region: str | None) -> None:
    """The clients that hold a key (never the values)."""
    from kubesage.deploy import keys

    try:
        found = keys.list_keys(stack_name, region)
    except KubesageError as exc:
        fail(exc)
    for key in found:
        click.echo(f"{key.client}\t{key.key_id}")

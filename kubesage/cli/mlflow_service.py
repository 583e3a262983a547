"""`kubesage mlflow up|down|status|user add`: the team tracking service (kubesage/mlflow_service)."""

from __future__ import annotations

import click

from kubesage.cli.output import fail
from kubesage.errors import KubesageError

state_dir_option = click.option(
    "--state-dir",
    default=None,
    metavar="DIR",
    help="The service's folder (database, artifacts snapshot, logs, credentials); "
    "default $KUBESAGE_STATE_DIR or .kubesage/mlflow.",
)


@click.group(name="mlflow")
def mlflow_group() -> None:
    """MLflow as a team service: PostgreSQL, an S3 artifact store and basic-auth, one command."""


@mlflow_group.command()
@state_dir_option
@click.option("--host", default="127.0.0.1", show_default=True, help="Address the server listens on.")
@click.option("--port", type=int, default=None, help="Its port (first `up` only; default: a free one).")
@click.option(
    "--allowed-hosts",
    default=None,
    help="Host headers the server accepts (comma-separated; default: this host and port by its names).",
)
def up(state_dir: str | None, host: str, port: int | None, allowed_hosts: str | None) -> None:
    """Start PostgreSQL, the artifact store and an authenticated MLflow server (what is not running)."""
    from kubesage.mlflow_service.layout import Layout
    from kubesage.mlflow_service.layout import state_dir as resolve
    from kubesage.mlflow_service.service import up as start

    try:
        status = start(Layout(resolve(state_dir)), host=host, port=port, allowed_hosts=allowed_hosts)
    except KubesageError as exc:
        fail(exc, False)
    for line in status.lines():
        click.echo(line)
    click.echo(f"export MLFLOW_TRACKING_URI={status.tracking_uri}")


@mlflow_group.command()
@state_dir_option
def down(state_dir: str | None) -> None:
    """Stop the service; the database and the artifacts stay for the next `up`."""
    from kubesage.mlflow_service.layout import Layout
    from kubesage.mlflow_service.layout import state_dir as resolve
    from kubesage.mlflow_service.service import down as stop

    try:
        status = stop(Layout(resolve(state_dir)))
    except KubesageError as exc:
        fail(exc, False)
    click.echo(f"stopped; data kept in {status.state_dir}")


@mlflow_group.command()
@state_dir_option
def status(state_dir: str | None) -> None:
    """What runs: the MLflow server, PostgreSQL, the S3 stand-in; exit 1 unless all three run."""
    from kubesage.mlflow_service.layout import Layout
    from kubesage.mlflow_service.layout import state_dir as resolve
    from kubesage.mlflow_service.service import status as read

    current = read(Layout(resolve(state_dir)))
    for line in current.lines():
        click.echo(line)
    raise SystemExit(0 if current.all_running else 1)


@mlflow_group.group()
def user() -> None:
    """Users of the service."""


@user.command("add")
@click.argument("name")
@state_dir_option
@click.option("--experiment", default="customer-churn", show_default=True, help="The experiment to grant.")
@click.option("--model", default="customer-churn", show_default=True, help="The registered model to grant.")
@click.option("--permission", type=click.Choice(["READ", "EDIT", "MANAGE"]), default="EDIT", show_default=True)
def add(name: str, state_dir: str | None, experiment: str, model: str, permission: str) -> None:
    """Create user NAME with a generated password and grant it the experiment and the model."""
    from kubesage.mlflow_service.layout import Layout
    from kubesage.mlflow_service.layout import state_dir as resolve
    from kubesage.mlflow_service.service import add_user

    try:
        created = add_user(Layout(resolve(state_dir)), name, experiment, model, permission)
    except KubesageError as exc:
        fail(exc, False)
    click.echo(
        f"user {created.username}: {permission} on experiment {experiment} ({created.experiment_id}) and model "
        f"{model}; credentials in {created.credentials_file} (set -a; . {created.credentials_file}; set +a)"
    )

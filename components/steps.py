"""Step entry points: what each KFP component body calls, with tracking and failure reporting.

Each function takes plain paths and values, so the KFP wrappers, the SageMaker shim and tests all
call the same code. A KubesageError is written to the failure channel (kubesage.tracking.contract, where a
runner reads it back to show the user the real reason, not "task failed") and ends the process with
the error's exit code.
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from kubesage.components import defaults
from kubesage.errors import KubesageError
from kubesage.tracking import step_run
from kubesage.tracking.contract import (
    TAG_DATA_SHA256,
    TAG_DATA_URI,
    TAG_NOT_REGISTERED,
    TAG_REGISTERED_NAME,
    TAG_REGISTERED_VERSION,
    write_failure,
)
from kubesage.util.redact import redact_text

if TYPE_CHECKING:
    from kubesage.churn.features import FeatureSchema
    from kubesage.components.distributed import Cluster, ClusterTraining
    from kubesage.components.evaluate import Evaluation
    from kubesage.components.register import Registration
    from kubesage.components.train import TrainParams
    from kubesage.tracking import StepTracker

# Each step imports only its own dependencies: a task is a fresh process, and importing
# scikit-learn, MLflow and XGBoost for every step costs seconds of start-up each.

T = TypeVar("T")


@contextmanager
def reported(step: str) -> Iterator[None]:
    try:
        yield
    except KubesageError as exc:
        message = redact_text(f"{type(exc).__name__}: {exc}")
        write_failure(step, message)
        print(f"kubesage: step {step} failed: {message}", file=sys.stderr)
        raise SystemExit(exc.exit_code) from exc


def _run(step: str, body: Callable[[], T]) -> T:
    with reported(step):
        return body()


def preprocess_step(
    input_data: str,
    train_path: str,
    validation_path: str,
    test_path: str,
    schema_path: str,
    seed: int = defaults.SEED,
    train_fraction: float = defaults.TRAIN_FRACTION,
    validation_fraction: float = defaults.VALIDATION_FRACTION,
    baseline_dir: str | None = None,
    train_shards: int = 1,
) -> dict[str, float]:
    from kubesage.components.preprocess import SplitFractions, preprocess

    def body() -> dict[str, float]:
        with step_run("preprocess") as tracker:
            fractions = SplitFractions(train_fraction, validation_fraction)
            tracker.log_params(
                {
                    "input_data": input_data,
                    "seed": seed,
                    "train_fraction": train_fraction,
                    "validation_fraction": validation_fraction,
                    "train_shards": train_shards,
                }
            )
            result = preprocess(
                input_data,
                {"train": train_path, "validation": validation_path, "test": test_path},
                schema_path,
                seed=seed,
                fractions=fractions,
                baseline_dir=baseline_dir,
                train_shards=train_shards,
            )
            tracker.set_tags({TAG_DATA_URI: result.data_uri, TAG_DATA_SHA256: result.data_sha256}, also_parent=True)
            tracker.log_metrics(result.metrics())
            _log_named(tracker, schema_path, "feature_schema.json")
            if baseline_dir is not None:  # the drift baseline, also on the preprocess step's run
                for name in ("statistics.json", "constraints.json"):
                    tracker.log_artifact(str(Path(baseline_dir) / name), artifact_path="baseline")
            return result.metrics()

    return _run("preprocess", body)


def train_step(
    train_path: str,
    validation_path: str,
    schema_path: str,
    model_dir: str,
    params: TrainParams,
) -> dict[str, float]:
    """Train and return the metrics. On a multi-instance SageMaker training job (issue 20) every host
    runs this: they train one model together, each on its shard, and the first host writes it."""
    from kubesage.churn.features import FeatureSchema
    from kubesage.components import distributed
    from kubesage.components.shards import one_csv
    from kubesage.components.train import train_from_csv

    def body() -> dict[str, float]:
        cluster = distributed.read_cluster(distributed.SAGEMAKER_CONFIG)
        if cluster.size > 1:
            schema = FeatureSchema.load(schema_path)
            return train_across_hosts(cluster, Path(train_path), Path(validation_path), schema, Path(model_dir), params)
        with step_run("train") as tracker:
            tracker.log_params(asdict(params))
            # A train split written as several files (one per instance) is read as one.
            with tempfile.TemporaryDirectory(prefix="kubesage-train-") as work:
                result = train_from_csv(
                    one_csv(Path(train_path), Path(work)),
                    validation_path,
                    params,
                    model_dir,
                    schema=FeatureSchema.load(schema_path),
                )
            tracker.log_metrics(result.metrics())
            return result.metrics()

    return _run("train", body)


def train_across_hosts(
    cluster: Cluster,
    train_path: Path,
    validation_path: Path,
    schema: FeatureSchema,
    model_dir: Path,
    params: TrainParams,
) -> dict[str, float]:
    """This host's part of a multi-instance job (components/distributed.py), tracked as one step run.

    Only the first host opens the step's MLflow run, and it closes it before any host leaves the
    collective: SageMaker local mode's docker-compose stops every container as soon as one exits, so a
    run still open on the first host would be cut off RUNNING.
    """
    from kubesage.components import distributed

    with ExitStack() as tracking, tempfile.TemporaryDirectory(prefix="kubesage-shard-") as work:
        tracker = tracking.enter_context(step_run("train")) if cluster.rank == 0 else None
        if tracker is not None:
            tracker.log_params({**asdict(params), "instance_count": cluster.size})

        def finish(done: ClusterTraining) -> None:
            if tracker is not None:
                tracker.log_metrics(done.metrics())
                tracking.close()

        done = distributed.train_on_cluster(
            cluster,
            train_path,
            validation_path,
            params,
            model_dir,
            Path(work),
            finish,
            distribution=distributed.channel_distribution(
                distributed.SAGEMAKER_CONFIG, distributed.channel_of(train_path)
            ),
            schema=schema,
        )
        if done.result is None:  # this host had no rows and left: `finish` did not run here
            finish(done)
    return done.metrics()


def evaluate_step(
    test_path: str, model_dir: str, evaluation_path: str, threshold: float = defaults.DECISION_THRESHOLD
) -> Evaluation:
    from kubesage.components.evaluate import evaluate_model, plot_confusion, plot_roc, write_evaluation

    def body() -> Evaluation:
        with step_run("evaluate") as tracker:
            tracker.log_params({"decision_threshold": threshold})
            evaluation = evaluate_model(test_path, model_dir, threshold)
            written = write_evaluation(evaluation, evaluation_path)
            tracker.log_metrics(evaluation.metrics, also_parent=True)
            plots = Path(written).parent
            _log_named(tracker, written, "evaluation.json")
            for plot in (
                plot_roc(evaluation, plots / "roc_curve.png"),
                plot_confusion(evaluation, plots / "confusion_matrix.png"),
            ):
                tracker.log_artifact(plot, "plots")
                # The parent run too, so MLflow's compare view shows both runs' plots side by side.
                tracker.log_parent_artifact(plot)
            return evaluation

    return _run("evaluate", body)


def register_step(
    model_dir: str,
    schema_path: str,
    evaluation_path: str,
    test_path: str,
    model_name: str = defaults.MODEL_NAME,
    baseline_dir: str | None = None,
) -> Registration:
    from kubesage.components.register import register_model

    def body() -> Registration:
        with step_run("register") as tracker:
            registration = register_model(
                model_dir,
                schema_path,
                evaluation_path,
                test_path,
                model_name,
                run_id=tracker.run_id,
                baseline_dir=baseline_dir,
                # The parent run's id survives step retries: it makes a retried registration a no-op.
                pipeline_run_id=tracker.parent_run_id,
            )
            tracker.set_tags(
                {TAG_REGISTERED_NAME: registration.name, TAG_REGISTERED_VERSION: registration.version},
                also_parent=True,
            )
            return registration

    return _run("register", body)


def gate_rejected_step(metric: str, value: float, minimum: float) -> str:
    """The else branch of the gate: record why the model was not registered."""
    reason = f"{metric} {value:.4f} is below the minimum {minimum:.4f}"

    def body() -> str:
        with step_run("not-registered") as tracker:
            tracker.set_tags({TAG_NOT_REGISTERED: reason}, also_parent=True)
        return reason

    return _run("not-registered", body)


def _log_named(tracker: StepTracker, path: str | Path, filename: str) -> None:
    """Log `path` as `filename`: MLflow names an artifact after its file; KFP artifact files have
    generic names. The renamed copy is removed once logged."""
    source = Path(path)
    if source.name == filename:
        tracker.log_artifact(source)
        return
    with tempfile.TemporaryDirectory(prefix="kubesage-artifact-") as folder:
        target = Path(folder) / filename
        target.write_bytes(source.read_bytes())
        tracker.log_artifact(target)


def log_kfp_metrics(metrics_artifact: Any, values: dict[str, float]) -> None:
    for name, value in sorted(values.items()):
        metrics_artifact.log_metric(name, float(value))


def log_kfp_classification(artifact: Any, evaluation: Evaluation) -> None:
    artifact.log_roc_curve(evaluation.roc_fpr, evaluation.roc_tpr, evaluation.roc_thresholds)
    artifact.log_confusion_matrix(["False", "True"], evaluation.confusion)


def drift_step(
    captures: str, model: str, output_dir: str, start: str = "", end: str = "", last: str = ""
) -> dict[str, float]:
    """`kubesage drift` as a pipeline step: the check into `output_dir`, tracked as the step's run and
    linked to the model version (tags on both); returns the metrics, `drift_violations` among them."""
    from kubesage.monitoring.drift import DriftRequest, run_drift
    from kubesage.monitoring.publish import (
        TAG_LAST_RUN,
        TAG_MODEL_NAME,
        TAG_MODEL_VERSION,
        TAG_VIOLATIONS,
        ModelVersion,
        mlflow_metrics,
    )
    from kubesage.monitoring.reading import window
    from kubesage.serving.model_source import resolve_model_dir

    def body() -> dict[str, float]:
        with step_run("drift") as tracker:
            tracker.log_params({"captures": captures, "model": model, "start": start, "end": end, "last": last})
            begin, finish = window(start or None, end or None, last or None)
            request = DriftRequest(captures, resolve_model_dir(model), Path(output_dir), begin, finish)
            result = run_drift(request)
            metrics = mlflow_metrics(result)
            tracker.log_metrics(metrics, also_parent=True)  # the monitoring run's results, as test metrics are
            for path in result.files.values():
                tracker.log_artifact(path, artifact_path="drift")
            version = ModelVersion.from_uri(model)
            if version is not None:
                tracker.set_tags({TAG_MODEL_NAME: version.name, TAG_MODEL_VERSION: version.version}, also_parent=True)
                if tracker.enabled and tracker.run_id:
                    from kubesage.tracking import mlflow_client

                    client = mlflow_client()
                    client.set_model_version_tag(version.name, version.version, TAG_LAST_RUN, tracker.run_id)
                    client.set_model_version_tag(
                        version.name, version.version, TAG_VIOLATIONS, str(len(result.violations))
                    )
            return metrics

    return _run("drift", body)

"""`kubesage score --runner sagemaker|sagemaker-local`: a registered model scores a customer base as a
SageMaker Batch Transform on the kubesage image.

    raw records (a local file, or s3://bucket/key downloaded)
      -> feature vectors + ids, client-side (kubesage.churn.feature_vectors: why there, see its docstring)
      -> model.tar.gz (booster + feature schema) and the vectors uploaded under
         s3://BUCKET/PREFIX/transform/inputs/JOB/ (the job role may read there, never write)
      -> CreateModel (the image, that artifact, KUBESAGE_MODEL_SHA256: the container refuses other bytes)
      -> CreateTransformJob (SplitType Line, text/csv, MultiRecord, MaxPayloadInMB, AssembleWith Line)
         writing to s3://BUCKET/PREFIX/transform/runs/JOB/output/ (the job role's only writable place)
      -> followed until it ends: progress lines; on failure one line with its FailureReason
      -> the answers (one line per input line, in order) joined with the ids by line number into
         `kubesage score`'s output (id columns, churn_probability, churn), written locally or to s3://

Ids: a transform's output is one answer line per input line, in input order (SageMaker's contract for
SplitType=Line with AssembleWith=Line, per input object). The ids stay on this side, in a file written
line for line with the vectors, and are joined back by position. SageMaker's own alternative,
DataProcessing (JoinSource=Input with InputFilter/OutputFilter), is not used: the SDK's local mode
ignores DataProcessing, so that request could not be run here, only written down.

`sagemaker` sends the requests to SageMaker (`endpoint_url` for a stand-in) and polls
DescribeTransformJob; `sagemaker-local` sends them to the SDK's local client (LocalSession), which
runs the job in Docker inside the create call, against the S3 at `s3_endpoint_url` (moto here).
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import itertools
import re
import shutil
import tarfile
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from kubesage.churn.feature_vectors import FeatureFiles
from kubesage.errors import DataError, RunnerError
from kubesage.runners.sagemaker import SageMakerLocalOptions, SageMakerOptions
from kubesage.runners.sagemaker.config import SageMakerConfig
from kubesage.util.aws import aws_call

Progress = Callable[[str], None]
DEFAULT_MAX_PAYLOAD_MB = 6  # SageMaker's default, and the largest body the kubesage image accepts
MAX_PAYLOAD_LIMIT_MB = 100  # SageMaker's upper bound for MaxPayloadInMB
LOCAL_INSTANCE = "local"
INPUT_FILE = "customers.csv"  # SageMaker names each output object after its input: customers.csv.out
MODEL_FILES = ("xgboost-model.ubj", "feature_schema.json")
TERMINAL = frozenset({"Completed", "Failed", "Stopped"})
_JOB_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")  # SageMaker's rule for job and model names


class TransformFailedError(RunnerError):
    """The transform job ended Failed or Stopped; the message carries SageMaker's FailureReason."""


@dataclass(frozen=True)
class TransformSettings:
    """The job's own settings (CLI flags), apart from where it runs (the runner's options)."""

    instance_type: str | None = None  # default: the runner's default instance type ('local' in local mode)
    instance_count: int = 1
    max_payload_mb: int = DEFAULT_MAX_PAYLOAD_MB
    job_name: str | None = None

    def check(self) -> None:
        if not 1 <= self.max_payload_mb <= MAX_PAYLOAD_LIMIT_MB:
            raise DataError(f"--max-payload-mb {self.max_payload_mb} must be between 1 and {MAX_PAYLOAD_LIMIT_MB}")
        if self.max_payload_mb > DEFAULT_MAX_PAYLOAD_MB:
            raise DataError(
                f"--max-payload-mb {self.max_payload_mb} is larger than the {DEFAULT_MAX_PAYLOAD_MB} MB body the "
                "kubesage image accepts (its /execution-parameters says so); every mini-batch would be refused"
            )
        if self.instance_count < 1:
            raise DataError(f"--instance-count {self.instance_count} must be at least 1")
        if self.job_name is not None and not _JOB_NAME.fullmatch(self.job_name):
            raise DataError(f"--job-name {self.job_name!r}: use at most 63 letters, digits and hyphens")


@dataclass(frozen=True)
class TransformPlan:
    """Every name and S3 location of one transform, decided before any call."""

    job_name: str
    model_name: str
    image: str
    role_arn: str
    model_data_url: str
    input_prefix: str
    output_prefix: str
    instance_type: str
    instance_count: int
    max_payload_mb: int
    environment: Mapping[str, str]
    output_kms_key: str | None = None
    volume_kms_key: str | None = None
    local: bool = False

    @property
    def parts(self) -> list[str]:
        """The input objects' names: one per instance, since SageMaker hands each instance whole objects."""
        if self.instance_count == 1:
            return [INPUT_FILE]
        stem, _, suffix = INPUT_FILE.partition(".")
        return [f"{stem}-{i:05d}.{suffix}" for i in range(self.instance_count)]

    @property
    def output_objects(self) -> list[str]:
        """Where SageMaker writes the answers, in input order: <S3OutputPath>/<input object>.out (local
        mode adds the job's name)."""
        base = f"{self.output_prefix}/{self.job_name}" if self.local else self.output_prefix
        return [f"{base}/{part}.out" for part in self.parts]


def plan_transform(
    config: SageMakerConfig, settings: TransformSettings, model_sha256: str, *, local: bool, now: float | None = None
) -> TransformPlan:
    """Names (kubesage-transform-<time>-<random>) and places under the configured bucket and prefix."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(now))
    job = settings.job_name or f"kubesage-transform-{stamp}-{uuid.uuid4().hex[:6]}"
    root = config.s3_root()
    environment = {"KUBESAGE_MODEL_SHA256": model_sha256}
    if local:
        # Local mode extracts the model into a 0700 temporary folder of this (root) process, which the
        # image's unprivileged user cannot read; SageMaker mounts it readable, so only here.
        environment["KUBESAGE_SERVE_USER"] = "root"
    return TransformPlan(
        job_name=job,
        model_name=job,
        image=config.image_uri,
        role_arn=config.job_role(),
        model_data_url=f"{root}/transform/inputs/{job}/model/model.tar.gz",
        input_prefix=f"{root}/transform/inputs/{job}/data",
        output_prefix=f"{root}/transform/runs/{job}/output",
        instance_type=LOCAL_INSTANCE if local else (settings.instance_type or config.default_instance_type),
        instance_count=1 if local else settings.instance_count,
        max_payload_mb=settings.max_payload_mb,
        environment=environment,
        output_kms_key=None if local else config.output_kms_key,
        volume_kms_key=None if local else config.volume_kms_key,
        local=local,
    )


def model_request(plan: TransformPlan) -> dict[str, Any]:
    """CreateModel: the kubesage image serving the uploaded artifact, run with the job role."""
    return {
        "ModelName": plan.model_name,
        "ExecutionRoleArn": plan.role_arn,
        "PrimaryContainer": {
            "Image": plan.image,
            "ModelDataUrl": plan.model_data_url,
            "Environment": dict(plan.environment),
        },
        "Tags": [{"Key": "kubesage:transform", "Value": plan.job_name}],
    }


def transform_job_request(plan: TransformPlan) -> dict[str, Any]:
    """CreateTransformJob with SageMaker's conventions for line-split CSV."""
    output: dict[str, Any] = {"S3OutputPath": plan.output_prefix, "Accept": "text/csv", "AssembleWith": "Line"}
    if plan.output_kms_key:
        output["KmsKeyId"] = plan.output_kms_key
    resources: dict[str, Any] = {"InstanceType": plan.instance_type, "InstanceCount": plan.instance_count}
    if plan.volume_kms_key:
        resources["VolumeKmsKeyId"] = plan.volume_kms_key
    return {
        "TransformJobName": plan.job_name,
        "ModelName": plan.model_name,
        # The API's spelling; the container's /execution-parameters says MULTI_RECORD, the same strategy.
        "BatchStrategy": "MultiRecord",
        "MaxPayloadInMB": plan.max_payload_mb,
        "TransformInput": {
            "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"{plan.input_prefix}/"}},
            "ContentType": "text/csv",
            "SplitType": "Line",
            "CompressionType": "None",
        },
        "TransformOutput": output,
        "TransformResources": resources,
        "Tags": [{"Key": "kubesage:transform", "Value": plan.job_name}],
    }


def model_archive(model_dir: Path) -> bytes:
    """model.tar.gz of the booster and its feature schema, byte-identical for the same files."""
    buffer = io.BytesIO()
    # gzip's header records a modification time, the current second unless given: tarfile's "w:gz"
    # made two archives of the same files differ whenever they were written a second apart.
    with (
        gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as zipped,
        tarfile.open(fileobj=zipped, mode="w", format=tarfile.PAX_FORMAT) as archive,
    ):
        for name in MODEL_FILES:
            path = model_dir / name
            if not path.is_file():
                raise DataError(f"the model in {model_dir} has no {name}; score a model registered by kubesage")
            info = tarfile.TarInfo(name)
            info.size = path.stat().st_size
            info.mode = 0o644
            with path.open("rb") as handle:
                archive.addfile(info, handle)
    return buffer.getvalue()


class TransformBackend(Protocol):
    """Where the requests go: SageMaker (boto3) or the SDK's local mode."""

    s3: Any

    def create_model(self, request: dict[str, Any]) -> None: ...

    def start(self, request: dict[str, Any]) -> None: ...

    def describe(self, job_name: str) -> dict[str, Any]: ...


class SageMakerBackend:
    """boto3's SageMaker client: CreateTransformJob returns at once; the job is polled."""

    def __init__(self, options: SageMakerOptions, boto_session: Any | None = None) -> None:
        from kubesage.util.boto_sessions import new_boto3_session

        session = boto_session or new_boto3_session(region_name=options.region)
        self.sagemaker = session.client("sagemaker", endpoint_url=options.endpoint_url, region_name=options.region)
        self.s3 = session.client("s3", region_name=options.region)

    def create_model(self, request: dict[str, Any]) -> None:
        with aws_call(f"sagemaker:CreateModel {request['ModelName']}", RunnerError):
            self.sagemaker.create_model(**request)

    def start(self, request: dict[str, Any]) -> None:
        with aws_call(f"sagemaker:CreateTransformJob {request['TransformJobName']}", RunnerError):
            self.sagemaker.create_transform_job(**request)

    def describe(self, job_name: str) -> dict[str, Any]:
        with aws_call(f"sagemaker:DescribeTransformJob {job_name}", RunnerError):
            described: dict[str, Any] = self.sagemaker.describe_transform_job(TransformJobName=job_name)
        return described


class LocalModeBackend:
    """The SDK's local client: the job runs in Docker inside the create call (in a thread here, so
    the caller keeps printing progress); a failure becomes the job's FailureReason."""

    def __init__(self, options: SageMakerLocalOptions, boto_session: Any | None = None) -> None:
        from sagemaker.core.local.local_session import LocalSession

        from kubesage.util.boto_sessions import new_boto3_session
        from kubesage.util.ports import free_port

        session = boto_session or new_boto3_session(region_name=options.region)
        self.local = LocalSession(boto_session=session, s3_endpoint_url=options.s3_endpoint_url)
        self.local.config = {"local": {"local_code": True, "serving_port": free_port()}}
        self.client = self.local.sagemaker_client
        self.s3 = session.client("s3", endpoint_url=options.s3_endpoint_url, region_name=options.region)
        self._thread: threading.Thread | None = None
        self._failure: str | None = None

    def create_model(self, request: dict[str, Any]) -> None:
        self.client.create_model(ModelName=request["ModelName"], PrimaryContainer=request["PrimaryContainer"])

    def start(self, request: dict[str, Any]) -> None:
        # Local mode takes no Tags, KMS keys or compression setting; the rest is sent as is.
        arguments = {k: v for k, v in request.items() if k != "Tags"}

        def run() -> None:
            try:
                self.client.create_transform_job(**arguments)
            except Exception as exc:  # the job's failure, reported as SageMaker reports one
                self._failure = _one_line(str(exc) or type(exc).__name__)
                self._stop_container(request["TransformJobName"])

        self._thread = threading.Thread(target=run, name="kubesage-transform-local", daemon=True)
        self._thread.start()

    def describe(self, job_name: str) -> dict[str, Any]:
        if self._thread is not None and self._thread.is_alive():
            return {"TransformJobName": job_name, "TransformJobStatus": "InProgress"}
        if self._failure is not None:
            return {"TransformJobName": job_name, "TransformJobStatus": "Failed", "FailureReason": self._failure}
        described: dict[str, Any] = self.client.describe_transform_job(TransformJobName=job_name)
        return described

    def _stop_container(self, job_name: str) -> None:
        """A failed local job leaves its serving container up (the SDK stops it only on success)."""
        from sagemaker.core.local.local_session import LocalSagemakerClient

        job = LocalSagemakerClient._transform_jobs.get(job_name)
        container = getattr(job, "container", None)
        if container is not None:
            # Best effort: the failure itself is what gets reported.
            with contextlib.suppress(Exception):
                container.stop_serving()


def _one_line(text: str) -> str:
    return " ".join(text.split())[:1000]


def follow(
    describe: Callable[[str], dict[str, Any]],
    job_name: str,
    progress: Progress,
    *,
    poll_seconds: float = 15.0,
    timeout_seconds: float = 6 * 3600,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> dict[str, Any]:
    """Poll the job until it ends; a line per status change and one every minute while it runs."""
    started = clock()
    last_status = ""
    last_line = started
    while True:
        described = describe(job_name)
        status = str(described.get("TransformJobStatus", ""))
        now = clock()
        if status != last_status or now - last_line >= 60:
            progress(f"transform job {job_name}: {status} ({now - started:.0f} s)")
            last_status, last_line = status, now
        if status in TERMINAL:
            return described
        if now - started > timeout_seconds:
            raise RunnerError(
                f"transform job {job_name} still {status} after {timeout_seconds:.0f} s; follow it with "
                f"`aws sagemaker describe-transform-job --transform-job-name {job_name}` or raise "
                "--option timeout_seconds=SECONDS"
            )
        sleep(poll_seconds)


@dataclass(frozen=True)
class TransformResult:
    job_name: str
    status: str
    rows_read: int
    rows_scored: int
    rows_rejected: int
    positives: int
    seconds: float
    output_objects: tuple[str, ...]


@dataclass(frozen=True)
class ScoreRows:
    """`kubesage score`'s row options, the same for every runner."""

    id_columns: tuple[str, ...] | None = None
    rejects_path: Path | None = None
    threshold: float | None = None  # None: the one registered with the model
    chunk_rows: int | None = None
    max_rejects: int | None = None


@dataclass(frozen=True)
class ScoreJob:
    """What one transform scores: the model directory (resolved), its threshold, the input file
    (resolved, raw records), the output URI (a path or s3://bucket/key) and the row options."""

    model_dir: Path
    threshold: float
    input_path: Path
    output_uri: str
    rows: ScoreRows = ScoreRows()


def encode_input(job: ScoreJob, workdir: Path, progress: Progress = lambda _: None) -> FeatureFiles:
    """The raw records as feature vectors and ids in `workdir`: bad rows are refused here, before any call."""
    from kubesage.churn import scoring
    from kubesage.churn.feature_vectors import write_feature_vectors
    from kubesage.churn.modelio import load_schema_if_present

    schema = load_schema_if_present(job.model_dir)
    if schema is None:
        raise DataError(f"the model in {job.model_dir} has no feature_schema.json; score a model kubesage registered")
    files = write_feature_vectors(
        job.input_path,
        workdir / INPUT_FILE,
        workdir / "ids.csv",
        schema,
        id_columns=job.rows.id_columns,
        rejects_path=job.rows.rejects_path,
        chunk_rows=job.rows.chunk_rows or scoring.DEFAULT_CHUNK_ROWS,
        max_rejects=scoring.DEFAULT_MAX_REJECTS if job.rows.max_rejects is None else job.rows.max_rejects,
    )
    rejected = f", {len(files.rejects):,} rejected (listed in {job.rows.rejects_path})" if files.rejects else ""
    progress(f"encoded {files.rows_written:,} rows as feature vectors in {files.seconds:.1f} s{rejected}")
    return files


def run_transform(
    job: ScoreJob,
    files: FeatureFiles,
    config: SageMakerConfig,
    settings: TransformSettings,
    backend: TransformBackend,
    workdir: Path,
    progress: Progress = lambda _: None,
    *,
    poll_seconds: float = 15.0,
    timeout_seconds: float = 6 * 3600,
    local: bool = False,
) -> TransformResult:
    """Upload `files` (from `encode_input`) and the model, create the model and the job, follow it, and
    write the scores to `job.output_uri`."""
    from kubesage.churn.data import upload_output, write_target
    from kubesage.churn.feature_vectors import read_probabilities, write_scores
    from kubesage.churn.modelio import model_sha256

    settings.check()
    started = time.perf_counter()
    plan = plan_transform(config, settings, model_sha256(job.model_dir), local=local)
    _put(backend.s3, plan.model_data_url, model_archive(job.model_dir))
    for part, path in zip(plan.parts, split_lines(files.features, len(plan.parts), files.rows_written), strict=True):
        _upload(backend.s3, path, f"{plan.input_prefix}/{part}")
    progress(f"uploaded the model and {files.rows_written:,} vectors to {plan.input_prefix.rsplit('/', 1)[0]}/")
    backend.create_model(model_request(plan))
    backend.start(transform_job_request(plan))
    progress(
        f"transform job {plan.job_name} started on {plan.instance_count} x {plan.instance_type} "
        f"(MaxPayloadInMB {plan.max_payload_mb}, MultiRecord, line-split text/csv)"
    )
    described = follow(
        backend.describe, plan.job_name, progress, poll_seconds=poll_seconds, timeout_seconds=timeout_seconds
    )
    status = str(described.get("TransformJobStatus"))
    if status != "Completed":
        reason = _one_line(str(described.get("FailureReason") or "no FailureReason given"))
        raise TransformFailedError(f"transform job {plan.job_name} {status}: {reason}")
    answers = workdir / f"{INPUT_FILE}.out"
    with answers.open("wb") as joined:
        for uri in plan.output_objects:
            piece = workdir / "part.out"
            _download(backend.s3, uri, piece)
            with piece.open("rb") as handle:
                shutil.copyfileobj(handle, joined)
            joined.write(b"\n")  # a part's last answer may lack its newline; blank lines are skipped
    upload = write_target(job.output_uri) is not None
    local_output = workdir / Path(job.output_uri.rstrip("/")).name if upload else Path(job.output_uri)
    positives = write_scores(files, read_probabilities(answers), local_output, job.threshold)
    if upload:
        upload_output(local_output, job.output_uri)
    return TransformResult(
        job_name=plan.job_name,
        status=status,
        rows_read=files.rows_read,
        rows_scored=files.rows_written,
        rows_rejected=len(files.rejects),
        positives=positives,
        seconds=time.perf_counter() - started + files.seconds,
        output_objects=tuple(plan.output_objects),
    )


def split_lines(path: Path, parts: int, rows: int) -> list[Path]:
    """`path` as `parts` files of consecutive lines (the first ones one line longer when uneven), in order."""
    if parts == 1:
        return [path]
    paths = [path.with_name(f"{path.stem}-{i:05d}{path.suffix}") for i in range(parts)]
    size, extra = divmod(rows, parts)
    with path.open("rb") as source:
        for i, target in enumerate(paths):
            with target.open("wb") as out:
                out.writelines(itertools.islice(source, size + (1 if i < extra else 0)))
    return paths


def _split(uri: str) -> tuple[str, str]:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key


def _put(s3: Any, uri: str, body: bytes) -> None:
    bucket, key = _split(uri)
    with aws_call(f"s3:PutObject {uri}", RunnerError):
        s3.put_object(Bucket=bucket, Key=key, Body=body, Metadata={"sha256": hashlib.sha256(body).hexdigest()})


def _upload(s3: Any, path: Path, uri: str) -> None:
    bucket, key = _split(uri)
    with aws_call(f"s3:PutObject {uri}", RunnerError):
        s3.upload_file(str(path), bucket, key)


def _download(s3: Any, uri: str, path: Path) -> None:
    bucket, key = _split(uri)
    with aws_call(f"s3:GetObject {uri}", RunnerError):
        s3.download_file(bucket, key, str(path))


def backend_for(
    runner: str, options: Mapping[str, Any]
) -> tuple[TransformBackend, SageMakerOptions | SageMakerLocalOptions]:
    """The backend and the validated options (ParameterError names a bad one) of `--runner`."""
    from kubesage.runners.registry import runner_spec

    validated = runner_spec(runner).load().validate_options(options)
    if isinstance(validated, SageMakerLocalOptions):
        return LocalModeBackend(validated), validated
    if isinstance(validated, SageMakerOptions):
        return SageMakerBackend(validated), validated
    raise DataError(f"--runner {runner} cannot run a Batch Transform; use local, sagemaker or sagemaker-local")

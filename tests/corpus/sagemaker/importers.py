"""dsl.importer of S3, https and other URIs, of URIs another task computes; input artifacts of the pipeline."""

from kfp import dsl
from kfp.dsl import Dataset, Input

from tests.corpus.sagemaker._components import count_lines, fit, say
from tests.corpus.sagemaker._expect import Case, Refused, Translates


@dsl.pipeline(name="import-s3-object")
def import_s3_object() -> None:
    imported = dsl.importer(artifact_uri="s3://corpus-bucket/data/rows.csv", artifact_class=Dataset, reimport=False)
    count_lines(data=imported.output)


@dsl.pipeline(name="import-s3-parameter")
def import_s3_parameter(uri: str = "s3://corpus-bucket/data/rows.csv") -> None:
    imported = dsl.importer(artifact_uri=uri, artifact_class=Dataset)
    count_lines(data=imported.output)


@dsl.pipeline(name="import-gcs")
def import_gcs() -> None:
    imported = dsl.importer(artifact_uri="gs://corpus-bucket/rows.csv", artifact_class=Dataset)
    count_lines(data=imported.output)


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def locate(name: str) -> str:
    return f"s3://corpus-bucket/data/{name}"


ROWS_SHA256 = "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03"


@dsl.pipeline(name="import-https-checked")
def import_https_checked() -> None:
    imported = dsl.importer(
        artifact_uri="https://example.com/data/rows.csv?v=2", artifact_class=Dataset, metadata={"sha256": ROWS_SHA256}
    )
    count_lines(data=imported.output)
    fit(data=imported.output)


@dsl.pipeline(name="import-https-unchecked")
def import_https_unchecked() -> None:
    imported = dsl.importer(artifact_uri="https://example.com/rows.csv", artifact_class=Dataset)
    count_lines(data=imported.output)


@dsl.pipeline(name="import-https-bad-checksum")
def import_https_bad_checksum() -> None:
    imported = dsl.importer(
        artifact_uri="https://example.com/rows.csv", artifact_class=Dataset, metadata={"sha256": "abc"}
    )
    count_lines(data=imported.output)


@dsl.pipeline(name="import-computed-uri")
def import_computed_uri(name: str = "rows.csv") -> None:
    where = locate(name=name)
    imported = dsl.importer(artifact_uri=where.output, artifact_class=Dataset)
    count_lines(data=imported.output)


@dsl.pipeline(name="import-http")
def import_http() -> None:
    imported = dsl.importer(artifact_uri="http://example.com/rows.csv", artifact_class=Dataset)
    say(text="x").after(count_lines(data=imported.output))


@dsl.pipeline(name="pipeline-input-artifact")
def pipeline_input_artifact(data: Input[Dataset]) -> None:
    count_lines(data=data)


CORPUS: list[Case] = [
    (
        import_s3_object,
        Translates("count-lines", report=("dsl.importer 'importer' (s3://corpus-bucket/data/rows.csv)",)),
    ),
    (import_s3_parameter, Translates("count-lines", report=("parameter 'uri'",))),
    (
        import_gcs,
        Refused(
            r"^task 'importer': dsl.importer of 'gs://corpus-bucket/rows.csv' \(gs://\) cannot be compiled to "
            r"SageMaker Pipelines; SageMaker steps read s3:// inputs or fetch https:// URLs; copy the object to S3"
        ),
    ),
    (import_http, Refused(r"task 'importer': dsl.importer of 'http://example.com/rows.csv' \(http://\)")),
    (
        import_https_checked,
        Translates(
            "count-lines",
            "fit",
            report=(
                f"each consumer's job fetches the URL before its task starts, checked against sha256 {ROWS_SHA256}",
            ),
        ),
    ),
    (import_https_unchecked, Translates("count-lines", report=("unchecked (no sha256 in metadata)",))),
    (import_https_bad_checksum, Refused(r"task 'importer': dsl.importer metadata sha256 'abc'.*64 lowercase hex")),
    (
        import_computed_uri,
        Translates("locate", "count-lines", report=("JsonGet(locate.parameters.Output) as an S3 input",)),
    ),
    (pipeline_input_artifact, Translates("count-lines", report=("input artifact 'data' system.Dataset",))),
]

"""dsl.importer of S3 and other URIs; input artifacts of the pipeline itself."""

from kfp import dsl
from kfp.dsl import Dataset, Input

from tests.corpus.sagemaker._components import count_lines
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


@dsl.pipeline(name="pipeline-input-artifact")
def pipeline_input_artifact(data: Input[Dataset]) -> None:
    count_lines(data=data)


CORPUS: list[Case] = [
    (
        import_s3_object,
        Translates("count-lines", report=("dsl.importer 'importer' (s3://corpus-bucket/data/rows.csv)",)),
    ),
    (import_s3_parameter, Translates("count-lines", report=("parameter 'uri'",))),
    (import_gcs, Refused(r"task 'importer': dsl.importer of 'gs://corpus-bucket/rows.csv'.*S3 only")),
    (pipeline_input_artifact, Translates("count-lines", report=("input artifact 'data' system.Dataset",))),
]

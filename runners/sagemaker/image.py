"""The step image by digest: a tag can be moved to other bytes, and the shim that verifies the task
specs lives in that image, so a pipeline definition must name the image by `@sha256:`.

`pinned_image` returns an image URI that names a digest: as given when it already does, resolved
through ECR (`ecr:DescribeImages`) when it is an ECR tag, refused otherwise.
"""

from __future__ import annotations

import re
from typing import Any

from kubesage.errors import RunnerError
from kubesage.util.aws import AwsFailure, on_aws_failure

_ECR_TAG = re.compile(
    r"(?P<registry>(?P<account>[0-9]{12})\.dkr\.ecr\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(?:\.cn)?)/"
    r"(?P<repository>[a-z0-9._/-]+)(?::(?P<tag>[\w.-]+))?"
)


def is_pinned(image_uri: str) -> bool:
    return "@sha256:" in image_uri


def pinned_image(image_uri: str, ecr: Any) -> str:
    """`image_uri` as REPOSITORY@sha256:DIGEST; RunnerError for a tag that cannot be resolved."""
    if is_pinned(image_uri):
        return image_uri
    match = _ECR_TAG.fullmatch(image_uri)
    if match is None:
        raise RunnerError(
            f"the step image {image_uri!r} is a mutable tag outside ECR; pass --image REPOSITORY@sha256:DIGEST "
            "(SageMaker pulls step images from ECR: push it there, and kubesage resolves the tag)"
        )
    tag = match["tag"] or "latest"

    def unresolvable(failure: AwsFailure) -> RunnerError:
        if failure.code in ("ImageNotFoundException", "RepositoryNotFoundException"):
            return RunnerError(
                f"the step image {image_uri!r} is not in ECR; push it, or pass --image REPOSITORY@sha256:..."
            )
        return RunnerError(
            f"cannot resolve the step image {image_uri!r} to a digest ({failure.text}); pass --image "
            "REPOSITORY@sha256:DIGEST, or allow ecr:DescribeImages on the repository"
        )

    with on_aws_failure(unresolvable):
        found = ecr.describe_images(
            registryId=match["account"], repositoryName=match["repository"], imageIds=[{"imageTag": tag}]
        )["imageDetails"]
    if not found:
        raise RunnerError(f"the step image {image_uri!r} is not in ECR; push it, or pass --image REPOSITORY@sha256:...")
    return f"{match['registry']}/{match['repository']}@{found[0]['imageDigest']}"

"""The Lambda's code: a small, deterministic zip of the handler's modules and the model bundle.

Only the modules the handler imports go in (kubesage.errors, kubesage.churn.features and five files of
kubesage.api); boto3 comes from the Lambda Python runtime. The zip is byte-identical for identical
inputs (sorted entries, fixed timestamps and modes), so its SHA-256 names it in S3 and an unchanged
function is never re-uploaded or updated.

    python -m kubesage.deploy.package --model models:/customer-churn/3 --output build/lambda
    python -m kubesage.deploy.package --code-only --output DIR    (the image's /var/task, no bundle)
"""

from __future__ import annotations

import argparse
import hashlib
import io
import zipfile
from dataclasses import dataclass
from pathlib import Path

import kubesage
from kubesage.lambda_runtime.bundle import BUNDLE_FILENAME, ModelBundle, bundle_from_model

HANDLER = "kubesage.lambda_runtime.handler.handler"
RUNTIME = "python3.11"
# Every module on the handler's import path; tests/unit/deploy/test_package.py imports the handler
# from an unpacked zip with the installed kubesage hidden, so a missing one fails there.
MODULES: tuple[str, ...] = (
    "kubesage/__init__.py",
    "kubesage/errors.py",
    "kubesage/churn/features.py",
    "kubesage/churn/__init__.py",
    "kubesage/lambda_runtime/__init__.py",
    "kubesage/lambda_runtime/bundle.py",
    "kubesage/lambda_runtime/endpoint.py",
    "kubesage/lambda_runtime/errors.py",
    "kubesage/lambda_runtime/handler.py",
    "kubesage/lambda_runtime/records.py",
)
_EPOCH = (1980, 1, 1, 0, 0, 0)


@dataclass(frozen=True)
class LambdaZip:
    path: Path
    sha256: str

    @property
    def s3_key(self) -> str:
        return f"kubesage/lambda/api-{self.sha256[:20]}.zip"


def source_root() -> Path:
    """The folder holding the kubesage package (a checkout or site-packages)."""
    return Path(kubesage.__file__).resolve().parent.parent


def code_files() -> dict[str, bytes]:
    root = source_root()
    return {name: (root / name).read_bytes() for name in MODULES}


def zip_bytes(bundle: ModelBundle | None) -> bytes:
    files = code_files()
    if bundle is not None:
        files[BUNDLE_FILENAME] = bundle.to_json().encode()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for name in sorted(files):
            info = zipfile.ZipInfo(name, date_time=_EPOCH)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, files[name])
    return buffer.getvalue()


def build_zip(bundle: ModelBundle, output_dir: str | Path) -> LambdaZip:
    data = zip_bytes(bundle)
    digest = hashlib.sha256(data).hexdigest()
    target = Path(output_dir)
    target.mkdir(parents=True, exist_ok=True)
    path = target / f"kubesage-api-{digest[:20]}.zip"
    path.write_bytes(data)
    return LambdaZip(path=path, sha256=digest)


def write_code(output_dir: str | Path) -> Path:
    """The handler's modules as a folder (the Lambda image copies it to /var/task)."""
    target = Path(output_dir)
    for name, data in code_files().items():
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        (target / name).write_bytes(data)
    return target


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Package the kubesage API Lambda.")
    parser.add_argument("--model", help="models:/NAME/VERSION or a model directory (schema + evaluation)")
    parser.add_argument("--code-only", action="store_true", help="write the handler's modules, no bundle")
    parser.add_argument("--output", required=True)
    args = parser.parse_args(argv)
    if args.code_only:
        print(write_code(args.output))
        return
    if not args.model:
        parser.error("--model is required unless --code-only")
    built = build_zip(bundle_from_model(args.model), args.output)
    print(f"{built.path} sha256={built.sha256}")


if __name__ == "__main__":
    main()

"""The Lambda's code: a small, deterministic zip of kubesage.lambda_runtime, what it imports, and the bundle.

The modules are the import closure of kubesage.lambda_runtime within kubesage (`runtime_modules`:
every `kubesage.*` import its files make, followed recursively, with each package's __init__.py),
read from the source with `ast`, so the zip follows the code and no list is kept by hand. boto3
comes from the Lambda Python runtime; nothing heavy may be imported (an import-linter contract).
The zip is byte-identical for identical inputs (sorted entries, fixed timestamps and modes), so its
SHA-256 names it in S3 and an unchanged function is never re-uploaded or updated.

    python -m kubesage.deploy.package --model models:/customer-churn/3 --output build/lambda
    python -m kubesage.deploy.package --code-only --output DIR    (the image's /var/task, no bundle)
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import io
import zipfile
from dataclasses import dataclass
from pathlib import Path

import kubesage
from kubesage.deploy.bundle import bundle_from_model
from kubesage.lambda_runtime.bundle import BUNDLE_FILENAME, ModelBundle

HANDLER = "kubesage.lambda_runtime.handler.handler"
RUNTIME = "python3.11"
RUNTIME_PACKAGE = "kubesage.lambda_runtime"
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


def module_file(root: Path, module: str) -> Path | None:
    """The source file of `module` under `root` (a package's __init__.py), or None if it has none."""
    base = root.joinpath(*module.split("."))
    for candidate in (base / "__init__.py", base.with_suffix(".py")):
        if candidate.is_file():
            return candidate
    return None


def imported_modules(path: Path, module: str) -> set[str]:
    """Every module name the file imports (absolute and relative), at any depth of the file.

    `from pkg import name` yields both `pkg` and `pkg.name`: name may be a submodule; a name that is
    not one has no file and is dropped by the caller.
    """
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_bytes(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                anchor = ".".join(parts[: len(parts) - node.level + 1])
                base = f"{anchor}.{node.module}" if node.module else anchor
            else:
                base = node.module or ""
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names if alias.name != "*")
    return found


def runtime_modules(root: Path | None = None, package: str = RUNTIME_PACKAGE) -> list[str]:
    """The zip's files: `package`'s modules and, recursively, every kubesage module they import.

    Each module brings its parent packages' __init__.py, which Python runs before the module.
    """
    root = root or source_root()
    top = package.split(".")[0]
    start = module_file(root, package)
    if start is None:
        raise FileNotFoundError(f"no package {package} under {root}")
    pending = [package] + [f"{package}.{p.stem}" for p in sorted(start.parent.glob("*.py")) if p.stem != "__init__"]
    files: dict[str, Path] = {}
    while pending:
        module = pending.pop()
        path = module_file(root, module)
        if path is None or module in files:
            continue
        files[module] = path
        parts = module.split(".")
        pending.extend(".".join(parts[:i]) for i in range(1, len(parts)))
        pending.extend(m for m in imported_modules(path, module) if m == top or m.startswith(f"{top}."))
    return sorted(path.relative_to(root).as_posix() for path in files.values())


def code_files() -> dict[str, bytes]:
    root = source_root()
    return {name: (root / name).read_bytes() for name in runtime_modules(root)}


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

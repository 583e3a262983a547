"""`python -m kubesage.serving --model DIR_OR_URI [--port 8080] [--workers N] [--threads T]`.

A thin entry point for the container's `serve` command and for tests; `kubesage serve` is the
user-facing CLI and calls the same functions.
"""

from __future__ import annotations

import argparse
import sys

from kubesage.errors import KubesageError
from kubesage.serving.model_source import resolve_model_dir
from kubesage.serving.server import serve


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kubesage.serving", description=__doc__)
    parser.add_argument("--model", "--model-dir", dest="model", default="/opt/ml/model")
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument("--port", type=int, default=None, help="default: $SAGEMAKER_BIND_TO_PORT or 8080")
    parser.add_argument("--workers", type=int, default=None, help="default: $MODEL_SERVER_WORKERS or CPUs")
    parser.add_argument("--threads", type=int, default=None, help="per worker; default: CPUs // workers")
    args = parser.parse_args(argv)
    try:
        serve(resolve_model_dir(args.model), host=args.host, port=args.port, workers=args.workers, threads=args.threads)
    except KubesageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())

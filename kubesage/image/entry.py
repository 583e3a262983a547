"""The image's entry dispatcher: `python -m kubesage.image train|serve`.

SageMaker starts bring-your-own containers as `docker run IMAGE train` or `docker run IMAGE serve`;
the image's /usr/local/bin/train and /usr/local/bin/serve exec this module. Both commands read the
SageMaker layout under /opt/ml, or under $KUBESAGE_SM_BASE when run without Docker.

Users: the image runs as root by default (SageMaker's contract: it mounts root-owned /opt/ml
folders that training must write to). `serve` only reads the model, so once it has checked the model
directory it drops to the unprivileged user named by $KUBESAGE_SERVE_USER (default `kubesage`, which
the image creates) before it loads anything or opens the port. Outside the image, where that user
does not exist, it keeps the current user.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from kubesage.errors import KubesageError, ModelError
from kubesage.image.train import TrainingPaths
from kubesage.util.privileges import account_to_drop_to, become

logger = logging.getLogger("kubesage.image")

ENV_SERVE_USER = "KUBESAGE_SERVE_USER"
DEFAULT_SERVE_USER = "kubesage"
USAGE = "usage: python -m kubesage.image {train|serve} (SageMaker runs `docker run IMAGE train|serve`)"


def drop_privileges(user: str) -> bool:
    """Become `user` if running as root and the user exists; True if the process changed user."""
    account = account_to_drop_to(user)
    if account is None:
        return False
    become(account)
    return True


def check_readable(model_dir: Path, user: str) -> None:
    """After dropping privileges, say plainly when the mounted model is not readable by that user."""
    if not model_dir.exists():
        raise ModelError(f"model directory {model_dir} does not exist; SageMaker mounts the model at /opt/ml/model")
    # The folder itself first: listing an unreadable one raised PermissionError (a traceback, no advice).
    readable_dir = os.access(model_dir, os.R_OK | os.X_OK)
    unreadable = (
        [model_dir]
        if not readable_dir
        else [
            path
            for path in [model_dir, *model_dir.iterdir()]
            if not os.access(path, os.R_OK | (os.X_OK * path.is_dir()))
        ]
    )
    if unreadable:
        names = ", ".join(str(p) for p in unreadable[:3])
        raise ModelError(
            f"{names} not readable by user {user!r} (uid {os.getuid()}); make the model files world-readable "
            f"or set {ENV_SERVE_USER}=root"
        )


def parse_serve_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="serve", description="SageMaker-compatible inference server")
    parser.add_argument("--model-dir", type=Path, default=None, help="default: <base>/model (/opt/ml/model)")
    parser.add_argument("--port", type=int, default=None, help="default: $SAGEMAKER_BIND_TO_PORT or 8080")
    parser.add_argument("--workers", type=int, default=None, help="default: $MODEL_SERVER_WORKERS or the CPUs")
    parser.add_argument("--threads", type=int, default=None, help="per worker; default: CPUs // workers")
    return parser.parse_args(list(argv))


def serve(argv: Sequence[str]) -> int:
    from kubesage.serving.server import serve as run_server

    args = parse_serve_args(argv)
    model_dir = args.model_dir or TrainingPaths.resolve().model_dir
    user = os.environ.get(ENV_SERVE_USER, DEFAULT_SERVE_USER)
    if drop_privileges(user):
        logger.info("serving as user %r (uid %d)", user, os.getuid())
        check_readable(model_dir, user)
    run_server(model_dir, port=args.port, workers=args.workers, threads=args.threads)
    return 0


def train(argv: Sequence[str]) -> int:
    from kubesage.image import train as training

    if argv:
        raise KubesageError(
            f"train takes no arguments (got {' '.join(argv)}); hyperparameters come from "
            "<base>/input/config/hyperparameters.json"
        )
    return training.main()


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not args or args[0] not in ("train", "serve"):
        print(USAGE, file=sys.stderr)
        return 2
    command, rest = args[0], args[1:]
    try:
        return train(rest) if command == "train" else serve(rest)
    except KubesageError as exc:
        print(f"kubesage {command}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())

"""The whole request path on one machine: the local API front, the handler, boto3, an endpoint.

`kubesage api` and the demo build on these: `in_process_api` (the handler in this process),
`LambdaContainer` (the Lambda image under the Runtime Interface Emulator in Docker) and
`GatewayServer` (the API front on uvicorn, in a background thread).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import threading
import time
import uuid
from pathlib import Path
from types import TracebackType
from typing import Any, Self
from urllib.error import URLError
from urllib.request import Request, urlopen

from kubesage.errors import DeployError
from kubesage.lambda_runtime.bundle import BUNDLE_FILENAME, ModelBundle
from kubesage.lambda_runtime.endpoint import ENV_ENDPOINT_NAME, ENV_ENDPOINT_URL, Endpoint, EndpointSettings
from kubesage.lambda_runtime.handler import PredictionApi
from kubesage.local_api.gateway import Invoke, LocalGateway
from kubesage.local_api.split import TrafficSplit, router_app
from kubesage.util.ports import free_port

DEFAULT_REGION = "us-east-1"
LAMBDA_IMAGE = os.environ.get("KUBESAGE_LAMBDA_IMAGE", "kubesage/lambda-api:latest")
RIE_PATH = Path(os.environ.get("KUBESAGE_LAMBDA_RIE", "build/lambda/aws-lambda-rie"))
START_TIMEOUT = 60.0


def has_aws_credentials() -> bool:
    import boto3

    return boto3.Session().get_credentials() is not None


def in_process_api(bundle: ModelBundle, endpoint_url: str | None, endpoint_name: str) -> PredictionApi:
    """The handler's API object, its boto3 client pointed at `endpoint_url`.

    A local endpoint (kubesage serve, the model image) checks no signature, so without AWS
    credentials the client sends unsigned requests instead of failing.
    """
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or DEFAULT_REGION
    settings = EndpointSettings(name=endpoint_name, url=endpoint_url, region=region, unsigned=not has_aws_credentials())
    return PredictionApi(bundle=bundle, endpoint=Endpoint(settings))


class BackgroundServer:
    """An ASGI app on 127.0.0.1, served by uvicorn in a daemon thread."""

    def __init__(self, app: Any, port: int | None = None, host: str = "127.0.0.1", name: str = "kubesage-api") -> None:
        import uvicorn

        self.host = host
        self.port = port or free_port()
        config = uvicorn.Config(app, host=host, port=self.port, log_level="warning", lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name=name, daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> Self:
        self.thread.start()
        deadline = time.monotonic() + START_TIMEOUT
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise DeployError(f"the local API did not start on {self.url} (is the port in use?)")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)

    def serve_forever(self) -> None:
        self.server.run()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class GatewayServer(BackgroundServer):
    """The local API front (kubesage.local_api.gateway) on 127.0.0.1."""

    def __init__(
        self,
        invoke: Invoke,
        api_key: str,
        port: int | None = None,
        host: str = "127.0.0.1",
        split: TrafficSplit | None = None,
    ) -> None:
        super().__init__(LocalGateway(invoke, api_key, split=split), port=port, host=host)


class SplitServer(BackgroundServer):
    """The traffic split's router (kubesage.local_api.split): the endpoint URL the handler calls."""

    def __init__(self, split: TrafficSplit, port: int | None = None) -> None:
        super().__init__(router_app(split), port=port, name="kubesage-split")
        self.split = split


class LambdaContainer:
    """The Lambda image under the Runtime Interface Emulator, on the host network.

    The model bundle is mounted where the deployed function has it (/var/task); the RIE binary
    (from the aws-sam-cli wheel, see lambda/build-image.sh) is mounted as the image's entrypoint
    expects it. Host networking lets the function reach an endpoint on the host's loopback.
    """

    def __init__(
        self,
        bundle: ModelBundle,
        endpoint_url: str,
        endpoint_name: str,
        image: str = LAMBDA_IMAGE,
        rie: Path = RIE_PATH,
    ) -> None:
        self.bundle = bundle
        self.endpoint_url = endpoint_url
        self.endpoint_name = endpoint_name
        self.image = image
        self.rie = rie.resolve()
        self.port = free_port()
        self.name = f"kubesage-lambda-{uuid.uuid4().hex[:8]}"
        self.workdir = Path(tempfile.mkdtemp(prefix="kubesage-lambda-"))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> LambdaContainer:
        if shutil.which("docker") is None:
            raise DeployError("--container needs Docker: run `make image` (it installs the engine and the image)")
        if not self.rie.is_file():
            raise DeployError(f"no Runtime Interface Emulator at {self.rie}: run `bash lambda/build-image.sh`")
        bundle_file = self.bundle.write(self.workdir / BUNDLE_FILENAME)
        bundle_file.chmod(0o644)
        env = {
            ENV_ENDPOINT_NAME: self.endpoint_name,
            ENV_ENDPOINT_URL: self.endpoint_url,
            # The emulator does not pass AWS_REGION through to the runtime; AWS_DEFAULT_REGION it does.
            "AWS_DEFAULT_REGION": os.environ.get("AWS_REGION", DEFAULT_REGION),
            # The local endpoint checks no signature; boto3 only needs something to sign with.
            "AWS_ACCESS_KEY_ID": "local",
            "AWS_SECRET_ACCESS_KEY": "local",
        }
        command = ["docker", "run", "--detach", "--rm", "--name", self.name, "--network", "host"]
        for key, value in env.items():
            command += ["--env", f"{key}={value}"]
        command += [
            "--volume", f"{self.rie}:/usr/local/bin/aws-lambda-rie:ro",
            "--volume", f"{bundle_file}:/var/task/{BUNDLE_FILENAME}:ro",
            "--env", f"RIE_ADDRESS=127.0.0.1:{self.port}",
            "--env", f"RIE_API_ADDRESS=127.0.0.1:{free_port()}",
            self.image,
        ]  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
        if done.returncode != 0:
            raise DeployError(f"could not start the Lambda image {self.image}: {done.stderr.strip()[:300]}")
        self._wait()
        return self

    def _wait(self) -> None:
        """The emulator listens at once; the function initialises on the first invoke."""
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            try:
                with urlopen(Request(self.url + "/", method="GET"), timeout=1):
                    return
            except URLError as exc:
                if "refused" not in str(exc.reason).lower():
                    return  # it answered (404 or similar): listening
            except OSError:
                pass
            time.sleep(0.1)
        raise DeployError(f"the Lambda emulator did not listen on {self.url}: {self.logs()[-500:]}")

    def logs(self) -> str:
        done = subprocess.run(["docker", "logs", self.name], capture_output=True, text=True, timeout=30, check=False)
        return done.stdout + done.stderr

    def stop(self) -> None:
        subprocess.run(["docker", "rm", "-f", self.name], capture_output=True, timeout=60, check=False)
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> LambdaContainer:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

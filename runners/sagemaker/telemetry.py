"""The SageMaker SDK's usage telemetry: off unless the user turns it on.

The SDK (sagemaker-core 2.27, core/telemetry/telemetry_logging.py) reports decorated calls
(`create_pipeline`, each local processing and training job) to an AWS endpoint, after asking STS for
the account id, unless `SageMaker.PythonSDK.Modules.TelemetryOptOut` is true in the calling session's
SDK config. `LocalPipelineSession.create_pipeline` reports through a default session the SDK builds
itself, which reads that config from the SDK's config files only, so kubesage sets it where every
session reads it: an admin-level config file (`SAGEMAKER_ADMIN_CONFIG_OVERRIDE`) for the length of
the run. The SDK lets the user's own config (`~/.config/sagemaker/config.yaml` or
`SAGEMAKER_USER_CONFIG_OVERRIDE`) override admin settings, so `TelemetryOptOut: false` there turns
telemetry back on, as does the runner option `telemetry=true`. An admin config that already exists
is kept: its settings are copied into kubesage's file (an admin config on S3 is left as it is).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from kubesage.util.environment import environment

ADMIN_CONFIG_OVERRIDE = "SAGEMAKER_ADMIN_CONFIG_OVERRIDE"


def _default_admin_config() -> str:
    """The SDK's own default admin config path (platformdirs' site config dir)."""
    from sagemaker.core.config.config_manager import SageMakerConfig

    return str(getattr(SageMakerConfig, "_DEFAULT_ADMIN_CONFIG_FILE_PATH", ""))


def opted_out_config(admin: dict[str, Any] | None) -> dict[str, Any]:
    """`admin` (the SDK config dict an admin set up, or None) with telemetry off, unless it says otherwise."""
    config: dict[str, Any] = dict(admin or {})
    config.setdefault("SchemaVersion", "1.0")
    sagemaker = config["SageMaker"] = dict(config.get("SageMaker") or {})
    python_sdk = sagemaker["PythonSDK"] = dict(sagemaker.get("PythonSDK") or {})
    modules = python_sdk["Modules"] = dict(python_sdk.get("Modules") or {})
    modules.setdefault("TelemetryOptOut", True)
    return config


@contextmanager
def sdk_telemetry(enabled: bool) -> Iterator[str]:
    """Within the block, every SageMaker SDK session in this process has telemetry off unless `enabled`
    or the user's SDK config turns it on. Yields what was done, for the run's log."""
    if enabled:
        yield "SageMaker SDK telemetry: on (runner option telemetry=true)"
        return
    existing = os.environ.get(ADMIN_CONFIG_OVERRIDE) or _default_admin_config()
    admin: dict[str, Any] | None = None
    if existing and Path(existing).is_file():
        admin = yaml.safe_load(Path(existing).read_text(encoding="utf-8")) or {}
    elif existing and (existing.startswith("s3://") or Path(existing).is_dir()):
        yield f"SageMaker SDK telemetry: as the admin config {existing} says (kubesage cannot merge into it)"
        return
    with tempfile.TemporaryDirectory(prefix="kubesage-sdk-config-") as folder:
        path = Path(folder) / "config.yaml"
        path.write_text(yaml.safe_dump(opted_out_config(admin)), encoding="utf-8")
        with environment({ADMIN_CONFIG_OVERRIDE: str(path)}):
            yield "SageMaker SDK telemetry: off unless your SDK config sets TelemetryOptOut: false"


def telemetry_opted_out(session: Any) -> bool:
    """What the SDK itself resolves for `session` (the value its telemetry decorator reads)."""
    from sagemaker.core.common_utils import resolve_value_from_config
    from sagemaker.core.config.config_schema import TELEMETRY_OPT_OUT_PATH

    return bool(
        resolve_value_from_config(config_path=TELEMETRY_OPT_OUT_PATH, default_value=False, sagemaker_session=session)
    )

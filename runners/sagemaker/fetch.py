"""An https:// `dsl.importer`: the consuming step downloads the URL itself, before its task starts.

SageMaker only downloads S3 inputs, so a URL cannot be an input channel. The shim fetches it into
the folder a channel would have used, under the URL's last path segment, and checks its sha256
against the importer's `metadata={"sha256": HEX}` when given (a URL's content can change between
runs; the checksum makes that a failed step rather than a silently different model). Redirects are
followed only to https:// URLs.
"""

from __future__ import annotations

import hashlib
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from kubesage.errors import DataError
from kubesage.util.redact import redact_uri

_CHUNK = 1 << 20
TIMEOUT_SECONDS = 300


def fetched_name(url: str) -> str:
    """The file an https:// import is saved as: the URL path's last segment (query dropped)."""
    name = urlsplit(url).path.rsplit("/", 1)[-1]
    return name or "artifact"


class _HttpsOnlyRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req: Any, fp: Any, code: int, msg: str, headers: Any, newurl: str) -> Any:
        if not newurl.startswith("https://"):
            raise DataError(
                f"{redact_uri(req.full_url)} redirects to {redact_uri(newurl)}, which is not https://; "
                "refusing to follow it"
            )
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def fetch(url: str, target: Path, sha256: str | None, timeout: float = TIMEOUT_SECONDS) -> str:
    """Download `url` to `target`; its sha256. A digest other than `sha256` removes the file and raises."""
    target.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    opener = urllib.request.build_opener(_HttpsOnlyRedirects())
    try:
        with opener.open(url, timeout=timeout) as response, target.open("wb") as out:
            while chunk := response.read(_CHUNK):
                digest.update(chunk)
                out.write(chunk)
    except OSError as exc:  # URLError, HTTPError and timeouts are OSErrors
        target.unlink(missing_ok=True)
        raise DataError(f"cannot fetch {redact_uri(url)}: {exc}; check the URL and that the job can reach it") from exc
    found = digest.hexdigest()
    if sha256 is not None and found != sha256:
        target.unlink(missing_ok=True)
        raise DataError(
            f"{redact_uri(url)} has sha256 {found}, not {sha256} as the importer's metadata says; the content changed: "
            "check it and update the sha256"
        )
    return found


def fetch_inputs(spec: dict[str, Any]) -> list[str]:
    """Fetch every https:// input of a task spec into its folder; one line per URL for the log."""
    lines = []
    for name, art in spec["input_artifacts"].items():
        if "fetch" not in art:
            continue
        url, expected = art["fetch"]["url"], art["fetch"].get("sha256")
        found = fetch(url, Path(art["dir"]) / art["file"], expected)
        checked = "checked" if expected else "not checked: no sha256 in the importer's metadata"
        # A signed URL's signature is a credential: the job's log gets the URL without it.
        lines.append(f"input '{name}': fetched {redact_uri(url)} (sha256 {found}, {checked})")
    return lines

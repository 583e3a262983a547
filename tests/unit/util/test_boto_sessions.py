"""boto3 sessions on one botocore loader (kubesage.util.boto_sessions): models parsed once, sessions still new."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import botocore.session
import pytest
from botocore.loaders import JSONFileLoader

from kubesage.util.boto_sessions import new_boto3_session, shared_loader, shared_service_models


@pytest.fixture
def own_data_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    """An AWS_DATA_PATH no other test uses, so the loader behind it starts with nothing parsed."""
    monkeypatch.setenv("AWS_DATA_PATH", str(tmp_path))
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    return str(tmp_path)


@pytest.fixture
def files_read(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every botocore data file a loader reads from here on."""
    read: list[str] = []
    original = JSONFileLoader.load_file

    def load_file(self: JSONFileLoader, file_path: str) -> Any:
        read.append(file_path)
        return original(self, file_path)

    monkeypatch.setattr(JSONFileLoader, "load_file", load_file)
    return read


def test_a_second_session_parses_no_service_model_but_reads_its_own_credentials(
    own_data_path: str, files_read: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "first-key")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "first-secret")
    first = new_boto3_session()
    first.client("s3")
    assert any(path.endswith("/s3/2006-03-01/service-2") for path in files_read), files_read

    files_read.clear()
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "second-key")
    second = new_boto3_session(region_name="us-west-2")
    client = second.client("s3")

    assert files_read == []
    assert client.meta.region_name == "us-west-2"
    credentials = second.get_credentials()
    assert credentials is not None and credentials.access_key == "second-key"
    assert first.get_credentials().access_key == "first-key"  # type: ignore[union-attr]


def test_the_shared_loader_keeps_each_search_path_once(own_data_path: str) -> None:
    sessions = [new_boto3_session() for _ in range(5)]
    loaders = {id(s._session.get_component("data_loader")) for s in sessions}
    assert loaders == {id(shared_loader(own_data_path))}
    paths = shared_loader(own_data_path).search_paths
    assert paths[0] == own_data_path
    assert len(paths) == len(set(paths))
    assert sum(path.endswith("/boto3/data") for path in paths) == 1  # every boto3 session appends it


def test_a_data_path_gets_its_own_loader_with_the_path_expanded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", "/home/someone")
    monkeypatch.setenv("KUBESAGE_MODELS", "models")
    assert shared_loader("~/$KUBESAGE_MODELS:/srv/aws").search_paths[:2] == ["/home/someone/models", "/srv/aws"]
    assert shared_loader("/srv/aws") is not shared_loader(None)


def test_sessions_a_library_opens_inside_the_block_share_the_loader() -> None:
    with shared_service_models():
        inside = botocore.session.get_session().get_component("data_loader")
    outside = botocore.session.get_session().get_component("data_loader")
    assert inside is shared_loader(None)
    assert outside is not shared_loader(None)

"""The local API Gateway front on its own: proxy events and response mapping, on a real socket."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import httpx
import pytest

from kubesage.local_api.front import GatewayServer
from kubesage.local_api.gateway import generate_api_key

KEY = generate_api_key()


def test_proxy_event_is_format_1_0_and_a_crash_is_a_502() -> None:
    seen: list[dict[str, Any]] = []

    def invoke(event: dict[str, Any]) -> Mapping[str, Any]:
        seen.append(event)
        if event["body"] == "crash":
            raise RuntimeError("secret detail")
        if event["body"] == "bad":
            return {"statusCode": "200", "body": "x"}
        return {"statusCode": 201, "headers": {"X-A": "1"}, "body": json.dumps({"ok": True}), "isBase64Encoded": False}

    with GatewayServer(invoke, KEY) as server:
        url = f"{server.url}/predict?a=1&a=2&b=x"
        ok = httpx.post(url, headers={"x-api-key": KEY, "content-type": "application/json"}, content="{}")
        assert (ok.status_code, ok.json(), ok.headers["x-a"]) == (201, {"ok": True}, "1")
        event = seen[-1]
        assert event["httpMethod"] == "POST" and event["path"] == event["resource"] == "/predict"
        assert event["body"] == "{}" and event["isBase64Encoded"] is False
        assert event["queryStringParameters"] == {"a": "2", "b": "x"}
        assert event["multiValueQueryStringParameters"] == {"a": ["1", "2"], "b": ["x"]}
        assert event["headers"]["x-api-key"] == KEY and event["multiValueHeaders"]["x-api-key"] == [KEY]
        context = event["requestContext"]
        assert context["identity"]["sourceIp"] == "127.0.0.1" and context["requestId"]
        assert context["stage"] == "local" and context["identity"]["apiKey"] == KEY
        assert event["pathParameters"] is None and event["stageVariables"] is None
        for body in ("crash", "bad"):
            failed = httpx.post(url, headers={"x-api-key": KEY}, content=body)
            assert (failed.status_code, failed.json()) == (502, {"message": "Internal server error"})
        binary = httpx.post(
            url, headers={"x-api-key": KEY, "content-type": "application/octet-stream"}, content=b"\xff"
        )
        assert binary.status_code == 201
        assert seen[-1]["isBase64Encoded"] is True and seen[-1]["body"] == "/w=="


def test_a_request_without_the_key_is_refused_before_its_body_is_read() -> None:
    import asyncio

    from kubesage.local_api.gateway import LocalGateway

    reads: list[int] = []
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        reads.append(1)
        return {"type": "http.request", "body": b"x" * 65536, "more_body": True}

    async def send(message: Any) -> None:
        sent.append(message)

    def invoke(event: dict[str, Any]) -> Mapping[str, Any]:
        raise AssertionError("the function must not be called")

    scope = {"type": "http", "method": "POST", "path": "/predict", "headers": [(b"x-api-key", b"wrong")]}
    asyncio.run(LocalGateway(invoke, KEY)(scope, receive, send))
    assert sent[0]["status"] == 403
    assert json.loads(sent[1]["body"]) == {"message": "Forbidden"}
    assert reads == []


def test_the_key_comes_from_a_file_or_the_environment_never_an_argument(tmp_path: Any) -> None:
    from click.testing import CliRunner

    from kubesage.cli.api import api_command
    from kubesage.errors import ParameterError
    from kubesage.local_api.gateway import read_api_key

    key_file = tmp_path / "key"
    key_file.write_text(f"{KEY}\n")
    assert read_api_key(key_file, {"KUBESAGE_API_KEY": "other"}) == KEY
    assert read_api_key(None, {"KUBESAGE_API_KEY": " env-key "}) == "env-key"
    assert read_api_key(None, {}) is None
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(ParameterError, match="the API key file .*empty; write the key on its first line"):
        read_api_key(tmp_path / "empty", {})
    with pytest.raises(ParameterError, match="cannot read the API key file .*missing: No such file"):
        read_api_key(tmp_path / "missing", {})
    result = CliRunner().invoke(api_command, ["--endpoint-url", "http://127.0.0.1:9", "--api-key", KEY])
    assert result.exit_code == 2
    assert "No such option '--api-key'" in result.output

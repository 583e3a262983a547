"""The loopback floor for bench_serving.py: an ASGI app that reads the body and answers "ok".

Served by the same uvicorn stack as kubesage.serving (httptools, uvloop, same workers), it shows
what the HTTP layer, wrk and this machine cost before any parsing or prediction: no server on
this stack can pass its requests/s.
"""

from __future__ import annotations

from typing import Any


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    more_body = True
    while more_body:
        message = await receive()
        more_body = message.get("more_body", False)
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"ok"})

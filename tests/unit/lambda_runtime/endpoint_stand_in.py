"""A real HTTP stand-in for a SageMaker endpoint on loopback, for the Lambda runtime's tests.

It speaks sagemaker-runtime's InvokeEndpoint over HTTP (boto3 really calls it) and answers with
scores (`mode` "ok", one `score` per CSV row), an error, garbage, or nothing at all (set `mode` on
the server); `seen` keeps every (path, content type, body) it received.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class StandIn(BaseHTTPRequestHandler):
    """POST /endpoints/<name>/invocations: behaviour set on the server object."""

    def do_POST(self) -> None:
        server: Any = self.server
        body = self.rfile.read(int(self.headers["Content-Length"])).decode()
        server.seen.append((self.path, self.headers["Content-Type"], body))
        if server.mode == "hang":
            time.sleep(3)
            return
        if server.mode == "error":
            payload, status = {"code": "ModelError", "message": "the model failed"}, 424
        elif server.mode == "garbage":
            payload, status = {"nothing": 1}, 200
        else:
            rows = body.splitlines()
            payload, status = {"predictions": [{"score": server.score} for _ in rows]}, 200
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


@contextmanager
def endpoint_stand_in(score: float) -> Iterator[Any]:
    """A running stand-in answering `score` for every row; shut down on exit."""
    server: Any = ThreadingHTTPServer(("127.0.0.1", 0), StandIn)
    server.mode, server.score, server.seen = "ok", score, []
    # serve_forever looks for shutdown() between polls: at its default 0.5 s, every test using the
    # stand-in waited up to half a second to end (0.5 s each, measured, ~10 s over test_handler.py).
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()

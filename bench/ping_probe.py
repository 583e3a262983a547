"""GET /ping every 100 ms on a fresh connection, one "status seconds" line per probe (used by load_serving.py).

Its own small process: inside the load generator it would share the GIL with the load threads.
"""

from __future__ import annotations

import sys
import time

import httpx


def main(url: str, out: str) -> None:
    with open(out, "a", buffering=1) as lines:  # noqa: PTH123
        while True:
            started = time.monotonic()
            try:
                status: int | str = httpx.get(f"{url}/ping", timeout=10).status_code
            except httpx.TransportError as exc:
                status = type(exc).__name__
            lines.write(f"{status} {time.monotonic() - started:.4f}\n")
            time.sleep(0.1)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])

"""An ASGI app served for real by uvicorn in a thread on 127.0.0.1: a fake BMC, the dashboard.

In-process, so a test can script the app while it serves; on a real socket, so TLS, timeouts and
outages are the network's. `stop()` then `start()` serves again on the same port (an outage).
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import uvicorn


def free_socket(port: int = 0) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    return sock


class Served:
    """uvicorn serving an ASGI app in a thread on 127.0.0.1; `stop()` and `start()` again on the same port."""

    def __init__(self, app: Any, *, certfile: str | None = None, keyfile: str | None = None, **config: Any) -> None:
        self.app, self.certfile, self.keyfile = app, certfile, keyfile
        self.config = {"log_level": "error", "lifespan": "off", "timeout_graceful_shutdown": 1, **config}
        self.port = 0
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> Served:
        sock = free_socket(self.port)
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(self.app, ssl_certfile=self.certfile, ssl_keyfile=self.keyfile, **self.config)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]}, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._server = self._thread = None

    @property
    def url(self) -> str:
        return f"{'https' if self.certfile else 'http'}://127.0.0.1:{self.port}"


@contextlib.contextmanager
def served(app: Any, **kwargs: Any) -> Iterator[Served]:
    server = Served(app, **kwargs).start()
    try:
        yield server
    finally:
        server.stop()

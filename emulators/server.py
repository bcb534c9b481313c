"""Run an ASGI emulator on a loopback port in a background thread.

Tests, benchmarks and the sandbox all start emulators this way, so every client library talks to
them over real HTTP on 127.0.0.1.
"""

from __future__ import annotations

import socket
import threading
import time
from types import TracebackType
from typing import Any

import uvicorn

__all__ = ["LoopbackServer"]


class LoopbackServer:
    """Serve ``app`` on ``127.0.0.1:port`` (``port=0`` picks a free one) until stopped.

    Use as a context manager, or call :meth:`start` and :meth:`stop`.
    """

    def __init__(self, app: Any, *, port: int = 0, host: str = "127.0.0.1") -> None:
        # IPPROTO_TCP explicitly: asyncio only disables Nagle's algorithm (TCP_NODELAY) on
        # accepted sockets whose listening socket says TCP; without it each call waits ~40 ms
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        try:
            self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self._sock.bind((host, port))
        except OSError:
            self._sock.close()
            raise
        self.host = host
        self.port: int = self._sock.getsockname()[1]
        config = uvicorn.Config(
            app,
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_keep_alive=30,
            backlog=2048,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> LoopbackServer:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("emulator server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._sock.close()

    def __enter__(self) -> LoopbackServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

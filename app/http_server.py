"""An ASGI app served by uvicorn on a daemon thread, beside a process's synchronous main loop.

The worker's loop (and the audit sink's) must never wait for HTTP, and HTTP must answer while
the loop is busy restoring a partition or blocked in librdkafka: so the server runs its own
event loop on its own thread. The socket is bound in the constructor, so the port is known
(port 0: a free one, chosen by the kernel) and a port already taken fails at once, in the
caller's thread. :meth:`BackgroundHttpServer.stop` asks uvicorn to finish the requests under
way and joins the thread; the thread is a daemon, so a server that does not stop in time
never keeps the process alive.
"""

from __future__ import annotations

import logging
import socket
import threading
import time

import uvicorn
from starlette.types import ASGIApp

log = logging.getLogger(__name__)

_START_TIMEOUT_S = 10.0


def listening_socket(host: str, port: int) -> socket.socket:
    """A bound, listening TCP socket whose connections send without Nagle's delay.

    asyncio turns Nagle off only on connections of sockets created with ``IPPROTO_TCP``,
    which ``socket.create_server`` does not set; uvicorn writes a response's head and body
    separately, so with Nagle on the body waited for the client's delayed ACK: 40-45 ms on
    every kept-alive request beyond a few a second (the worker's card lookups,
    docs/BENCHMARKS.md). Accepted connections inherit ``TCP_NODELAY`` from the listener."""
    listener = socket.create_server((host, port))
    listener.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return listener


class BackgroundHttpServer:
    def __init__(self, app: ASGIApp, host: str, port: int, name: str) -> None:
        self.name = name
        self._socket = listening_socket(host, port)
        config = uvicorn.Config(
            app,
            log_config=None,  # our handlers and format (app/logs.py)
            access_log=False,  # a scrape every few seconds is not news
            lifespan="off",
            server_header=False,
            timeout_graceful_shutdown=2,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, name=name, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._socket.getsockname()[:2]
        return f"http://{host}:{port}"

    def start(self) -> None:
        """Serve from now on; returns once uvicorn accepts connections."""
        self._thread.start()
        deadline = time.monotonic() + _START_TIMEOUT_S
        while not self._server.started and self._thread.is_alive():
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} did not start within {_START_TIMEOUT_S:.0f}s")
            time.sleep(0.01)

    def stop(self, timeout_s: float = 5.0) -> None:
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout_s)
        self._socket.close()

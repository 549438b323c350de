"""A real uvicorn server on a loopback port, running in a thread of the test process."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import uvicorn
from fastapi import FastAPI

from backend.api.app import create_app
from backend.config import Settings


@dataclass
class RunningServer:
    url: str
    app: FastAPI
    server: uvicorn.Server

    @property
    def ws_url(self) -> str:
        return "ws" + self.url.removeprefix("http")


@contextmanager
def running_server(settings: Settings, *, port: int = 0) -> Iterator[RunningServer]:
    """Serve `create_app(settings)` until the block ends (port 0: any free port)."""
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_config=None,
        access_log=False,
        ws_ping_interval=1.0,
        ws_ping_timeout=2.0,
        timeout_graceful_shutdown=2,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    bound = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield RunningServer(url=f"http://127.0.0.1:{bound}", app=app, server=server)
    finally:
        server.should_exit = True
        thread.join(timeout=15)

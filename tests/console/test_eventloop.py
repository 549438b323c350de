"""The console's loop runs every callback inside itself, whoever processes Qt's events.

qasync processes events once more after `run_until_complete` has cleared
the running loop; a task step delivered then used to run with no loop at all
(httpx failed with anyio's `NoEventLoopError`: a rare contract-test teardown
error). These tests run the loop by hand, as pytest-asyncio and
`asyncio.Runner` do, and check what such a step sees.
"""

from __future__ import annotations

import asyncio
import socket

import httpx
import pytest
from PySide6.QtWidgets import QApplication

from console.eventloop import QtLoop
from tests.qtloop import new_qasync_loop


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_a_step_delivered_after_the_loop_stopped_sees_its_loop(qapp: QApplication) -> None:
    loop = new_qasync_loop()
    assert isinstance(loop, QtLoop)
    seen: list[tuple[asyncio.AbstractEventLoop, asyncio.Task[object] | None]] = []

    async def step() -> None:
        seen.append((asyncio.get_running_loop(), asyncio.current_task()))

    async def main() -> asyncio.Task[None]:
        # Its first step is queued now and delivered only after `main` has
        # finished and stopped the loop: in qasync's last round of events.
        return asyncio.create_task(step())

    try:
        task = loop.run_until_complete(main())
        assert task.done()
        assert seen == [(loop, task)]
        assert asyncio._get_running_loop() is None  # restored afterwards
    finally:
        loop.close()


def test_a_request_started_after_the_loop_stopped_fails_only_as_a_request(
    qapp: QApplication,
) -> None:
    """What broke the teardown: an httpx request stepped outside the loop."""
    loop = new_qasync_loop()
    http = httpx.AsyncClient(base_url=f"http://127.0.0.1:{_closed_port()}", timeout=5)

    async def request() -> None:
        await http.get("/healthz")

    async def main() -> asyncio.Task[None]:
        return asyncio.create_task(request())

    async def outcome(task: asyncio.Task[None]) -> BaseException | None:
        await asyncio.wait({task})
        await http.aclose()
        return task.exception()

    try:
        task = loop.run_until_complete(main())
        error = loop.run_until_complete(outcome(task))
        assert isinstance(error, httpx.ConnectError)  # refused: the request itself ran
    finally:
        loop.close()


def test_coroutine_functions_are_still_refused_as_callbacks(qapp: QApplication) -> None:
    loop = new_qasync_loop()

    async def coroutine() -> None:
        return None

    try:
        with pytest.raises(TypeError):
            loop.call_soon(coroutine)
    finally:
        loop.close()

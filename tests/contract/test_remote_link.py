"""What only a remote client meets: no route, an untrusted certificate, TLS done right."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from contextlib import aclosing
from pathlib import Path

import pytest

from console.client.errors import CertificateRejected, Unreachable
from console.client.remote import RemoteClient
from console.client.types import ConnectionState, Event
from tests.api.server import RunningServer, running_server, self_signed
from tests.conftest import PASSWORD, Backend
from tests.contract.conftest import FAST, _seed_admin

pytestmark = pytest.mark.asyncio


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture
def tls_server(backend: Backend, tmp_path: Path) -> Iterator[tuple[RunningServer, Path]]:
    _seed_admin(backend.settings)
    cert, key = self_signed(tmp_path)
    with running_server(backend.settings, tls=(cert, key)) as running:
        yield running, cert


async def test_nobody_listening_is_unreachable() -> None:
    client = RemoteClient(f"http://127.0.0.1:{_closed_port()}", timeout=2, backoff=FAST)
    try:
        with pytest.raises(Unreachable) as failure:
            await client.sign_in("ada", PASSWORD)
        assert not isinstance(failure.value, CertificateRejected)
        assert "127.0.0.1" in failure.value.message
        assert client.status.state is ConnectionState.RECONNECTING
    finally:
        await client.close()
    assert client.status.state is ConnectionState.OFFLINE


async def test_untrusted_certificate_is_rejected_and_a_ca_file_trusts_it(
    tls_server: tuple[RunningServer, Path],
) -> None:
    server, cert = tls_server
    assert server.url.startswith("https://")
    untrusting = RemoteClient(server.url, timeout=5)
    try:
        with pytest.raises(CertificateRejected):
            await untrusting.sign_in("ada", PASSWORD)
    finally:
        await untrusting.close()

    client = RemoteClient(server.url, ca_file=cert, timeout=5, backoff=FAST)
    try:
        await client.sign_in("ada", PASSWORD)
        stream = client.events(["users"])
        async with aclosing(stream):  # type: ignore[type-var]
            first = asyncio.ensure_future(anext(stream))
            await asyncio.sleep(0.5)  # subscribed over wss
            await client.create_user(username="otto", password=PASSWORD, role="viewer")
            async with asyncio.timeout(15):
                event = await first
        assert isinstance(event, Event)
        assert event.data["user"]["username"] == "otto"
    finally:
        await client.close()

"""What only a remote client meets: no route, an untrusted certificate, TLS done right
(or knowingly not checked), and the server's request budget."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from contextlib import aclosing
from pathlib import Path

import pytest

from backend.api.ratelimit import SETTING as REQUEST_BUDGET
from backend.api.ratelimit import WINDOW
from backend.core import Core
from backend.domain.permissions import Role
from backend.domain.principal import Principal
from console.client.errors import CertificateRejected, RateLimited, Unreachable
from console.client.remote import RemoteClient
from console.client.types import ConnectionState, Event
from tests.api.server import RunningServer, running_server, self_signed
from tests.conftest import PASSWORD, Backend
from tests.contract.conftest import FAST, Harness, _seed_admin
from tests.contract.proxy import link_to

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
        async with aclosing(client.events(["users"])) as stream:
            await stream.ready()  # subscribed over wss
            await client.create_user(username="otto", password=PASSWORD, role="viewer")
            async with asyncio.timeout(15):
                event = await anext(stream)
        assert isinstance(event, Event)
        assert event.data["user"]["username"] == "otto"
    finally:
        await client.close()


async def test_verify_false_connects_to_a_self_signed_server(
    tls_server: tuple[RunningServer, Path],
) -> None:
    """For a development server: TLS without checking whose certificate it is."""
    server, _cert = tls_server
    client = RemoteClient(server.url, verify=False, timeout=5, backoff=FAST)
    try:
        me = await client.sign_in("ada", PASSWORD)
        assert me.username == "ada"
        async with aclosing(client.events(["users"])) as stream:
            await stream.ready()  # wss, unchecked too
            await client.create_user(username="otto", password=PASSWORD, role="viewer")
            async with asyncio.timeout(15):
                event = await anext(stream)
        assert isinstance(event, Event)
        assert event.data["user"]["username"] == "otto"
        assert client.status.state is ConnectionState.LIVE
    finally:
        await client.close()


async def test_a_stream_that_cannot_connect_at_first_is_unreachable(harness: Harness) -> None:
    """Before the first subscription nothing is retried: the panel hears it at once."""
    if harness.server is None:
        pytest.skip("an embedded backend is always reachable")
    async with link_to(harness.server.url) as link:
        client = RemoteClient(link.url, timeout=5, backoff=FAST)
        try:
            await client.sign_in("ada", PASSWORD)
            link.cut()
            stream = client.events(["users"])
            with pytest.raises(Unreachable) as failure:
                await stream.ready()
            assert "127.0.0.1" in failure.value.message
            with pytest.raises(Unreachable):
                await anext(stream)
            link.restore()
            async with aclosing(client.events(["users"])) as again:  # a new one connects
                await again.ready()
        finally:
            await client.close()


BUDGET = 5


@pytest.fixture
def limited_server(backend: Backend) -> Iterator[RunningServer]:
    """A server allowing each user BUDGET requests a minute (set before it starts:
    a running server reuses its reading of the setting for a few seconds)."""

    async def seed() -> None:
        settings = backend.settings.model_copy(update={"live_events": False})
        async with Core.open(settings) as core:
            ada = await core.users.create_first_admin(username="ada", password=PASSWORD)
            admin = Principal.for_user(user_id=ada.id, username="ada", role=Role.ADMIN)
            await core.settings.write(
                admin, REQUEST_BUDGET, BUDGET, expected_version=0, reason="test"
            )

    asyncio.run(seed())
    with running_server(backend.settings) as running:
        yield running


async def test_requests_over_the_budget_are_rate_limited(limited_server: RunningServer) -> None:
    client = RemoteClient(limited_server.url, timeout=5, backoff=FAST)
    try:
        await client.sign_in("ada", PASSWORD)  # the sign-in is not charged; its /me is
        for _ in range(BUDGET - 1):
            await client.list_users()
        with pytest.raises(RateLimited) as failure:
            await client.list_users()
        limited = failure.value
        assert 0 < limited.retry_after <= WINDOW
        assert limited.details["limit"] == BUDGET
        # An answer, not a broken link: the connection is still live.
        assert client.status.state is ConnectionState.LIVE
    finally:
        await client.close()

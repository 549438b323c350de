"""A remote event stream while the server cannot serve it: its database or Redis is down.

The server runs over a private PostgreSQL cluster and a private Redis (see
`tests.private_services`), never the machine's shared ones, behind a link
that can be cut. Once subscribed, a stream the server closes with 1013
(database unreachable) or 1011 (event bus unreachable) reconnects with
backoff, the client saying RECONNECTING and why, and resumes without loss
when the server is back; a stream that cannot be served at all when it is
opened fails at once with `Unavailable`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from contextlib import aclosing
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from backend.config import Settings
from console.client.errors import Unavailable, Unreachable
from console.client.protocol import Client, EventStream
from console.client.remote import RemoteClient
from console.client.types import ConnectionState, ConnectionStatus, Event, StreamReset
from tests.api.server import RunningServer, running_server
from tests.conftest import PASSWORD, TEST_SECRET
from tests.contract.conftest import FAST, _seed_admin, publish_on_server
from tests.contract.proxy import link_to

if TYPE_CHECKING:
    # Only for annotations: importing it for real before pytest registers it
    # as a plugin would stop pytest from rewriting its asserts.
    from tests.private_services import PrivatePostgres, PrivateRedis

pytest_plugins = ["tests.private_services"]
pytestmark = pytest.mark.asyncio

WAIT = 30.0
"""Seconds for a recovery: PostgreSQL restarts, the server's pool notices."""


@pytest.fixture
def server(
    private_postgres: PrivatePostgres, private_redis: PrivateRedis, tmp_path: Path
) -> Iterator[RunningServer]:
    settings = Settings(
        data_dir=tmp_path,
        secret_key=TEST_SECRET,
        database_url=private_postgres.url,
        redis_url=private_redis.url,
        auto_migrate=False,
        run_jobs=False,
        collect_local=False,
    )
    _seed_admin(settings)
    with running_server(settings) as running:
        yield running


async def status_until(client: Client, check: Callable[[ConnectionStatus], bool]) -> None:
    """Wait, through the status listeners, until the client's status passes `check`."""
    reached = asyncio.Event()

    def listen(status: ConnectionStatus) -> None:
        if check(status):
            reached.set()

    remove = client.add_status_listener(listen)
    try:
        if not check(client.status):
            async with asyncio.timeout(WAIT):
                await reached.wait()
    finally:
        remove()


async def next_message(stream: EventStream) -> Event | StreamReset:
    async with asyncio.timeout(WAIT):
        return await anext(stream)


async def test_a_stream_waits_out_a_database_outage_and_loses_nothing(
    server: RunningServer, private_postgres: PrivatePostgres
) -> None:
    async with link_to(server.url) as link:
        client = RemoteClient(link.url, ping_interval=0.2, backoff=FAST)
        try:
            await client.sign_in("ada", PASSWORD)
            async with aclosing(client.events(["hosts"])) as stream:
                await stream.ready()
                (before,) = await publish_on_server(server, "hosts", [{"n": 0}])
                first = await next_message(stream)
                assert isinstance(first, Event)
                assert first.id == before

                await asyncio.to_thread(private_postgres.stop)
                link.cut()
                await status_until(client, lambda s: s.state is ConnectionState.RECONNECTING)
                # Make the server forget who we are (a `users` event empties its cache
                # of verified credentials), so a new connection asks the database.
                await publish_on_server(server, "users", [{"action": "test"}])
                link.restore()
                await status_until(client, lambda s: "1013" in s.detail)

                # The bus still works: these are published while the stream is refused.
                missed = await publish_on_server(server, "hosts", [{"n": n} for n in (1, 2, 3)])
                await asyncio.sleep(1.0)  # several refused attempts, pings answered meanwhile
                assert client.status.state is ConnectionState.RECONNECTING
                assert "1013" in client.status.detail

                await asyncio.to_thread(private_postgres.start)
                got = [await next_message(stream) for _ in missed]
                assert [m.id for m in got if isinstance(m, Event)] == missed
                await status_until(client, lambda s: s.state is ConnectionState.LIVE)
        finally:
            await client.close()


async def test_a_stream_the_server_cannot_serve_when_opened_is_unavailable(
    server: RunningServer, private_redis: PrivateRedis
) -> None:
    client = RemoteClient(server.url, ping_interval=0.2, backoff=FAST)
    try:
        await client.sign_in("ada", PASSWORD)
        await asyncio.to_thread(private_redis.stop)
        stream = client.events(["hosts"])
        with pytest.raises(Unavailable) as failure:
            await stream.ready()
        assert not isinstance(failure.value, Unreachable)  # the server answered
        assert failure.value.details["close_code"] in (1011, 1013)
        with pytest.raises(Unavailable):
            await anext(stream)

        await asyncio.to_thread(private_redis.start)
        async with asyncio.timeout(WAIT):
            while True:  # a new stream, once the server has its bus back
                again = client.events(["hosts"])
                try:
                    await again.ready()
                    break
                except Unavailable:
                    await again.aclose()
                    await asyncio.sleep(0.2)
        await again.aclose()
    finally:
        await client.close()

"""The event WebSocket end to end: a real server, real WebSocket clients.

Events come from real API actions (a setting change publishes a `settings`
and an `audit` event) wherever a handful suffice; tests that need hundreds
publish straight on the server's bus, on the server's own loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from backend.api.routes.events import StreamOptions
from backend.bus.base import EventBus
from backend.config import Settings
from tests.api.conftest import _seed, sign_in
from tests.api.server import RunningServer, running_server
from tests.conftest import Backend

SETTING = "/api/v1/settings/collector.interval_seconds"
ROLES = {"admin": "ada", "operator": "otto", "viewer": "vera"}


@dataclass
class Stack:
    server: RunningServer
    tokens: dict[str, str]
    """Access token per role: admin, operator, viewer."""


@contextmanager
def _stack(settings: Settings) -> Iterator[Stack]:
    with running_server(settings) as running:
        tokens: dict[str, str] = {}
        for role, username in ROLES.items():
            client = sign_in(running.url, username)
            client.close()
            tokens[role] = client.headers["Authorization"].removeprefix("Bearer ")
        yield Stack(running, tokens)


@pytest.fixture
def stack(backend: Backend) -> Iterator[Stack]:
    _seed(backend)
    with _stack(backend.settings) as made:
        yield made


@pytest.fixture
def small_stack(backend: Backend) -> Iterator[Stack]:
    """A server whose bus keeps only 100 events (the least allowed)."""
    _seed(backend)
    with _stack(backend.settings.model_copy(update={"event_retention": 100})) as made:
        yield made


@asynccontextmanager
async def events(
    stack: Stack | RunningServer,
    token: str | None,
    *,
    query: str = "",
    header: bool = True,
    **options: Any,
) -> AsyncIterator[ClientConnection]:
    server = stack.server if isinstance(stack, Stack) else stack
    headers = {"Authorization": f"Bearer {token}"} if token and header else None
    async with connect(
        f"{server.ws_url}/api/v1/events{query}",
        additional_headers=headers,
        compression=None,
        proxy=None,
        open_timeout=5,
        close_timeout=2,
        **options,
    ) as ws:
        if token and not header:
            await ws.send(json.dumps({"type": "auth", "token": token}))
        yield ws


async def message(ws: ClientConnection, *, heartbeats: bool = False) -> dict[str, Any]:
    """The next message (heartbeats skipped unless asked for)."""
    while True:
        async with asyncio.timeout(5):
            received = json.loads(await ws.recv())
        if heartbeats or received.get("type") != "heartbeat":
            assert isinstance(received, dict)
            return received


async def subscribed(ws: ClientConnection) -> dict[str, Any]:
    hello = await message(ws)
    assert hello["type"] == "subscribed", hello
    return hello


async def drain(ws: ClientConnection) -> list[dict[str, Any]]:
    """Every message until the server closes the connection."""
    received: list[dict[str, Any]] = []
    async with asyncio.timeout(10):
        with contextlib.suppress(ConnectionClosed):
            async for text in ws:
                received.append(json.loads(text))
    return received


async def closed_with(ws: ClientConnection) -> tuple[int, str]:
    """Read until the server closes; its close code and reason."""
    await drain(ws)
    frame = ws.protocol.close_rcvd
    assert frame is not None, "closed without a close frame"
    return frame.code, frame.reason


async def change_setting(server: RunningServer, token: str, value: int) -> None:
    """A real API action: publishes a `settings` and an `audit` event."""
    async with httpx.AsyncClient(
        base_url=server.url, headers={"Authorization": f"Bearer {token}"}, timeout=10
    ) as http:
        current = (await http.get(SETTING)).json()["version"]
        response = await http.put(
            SETTING, json={"value": value, "expected_version": current, "reason": "test"}
        )
        assert response.status_code == 200, response.text


async def publish(server: RunningServer, count: int, size: int = 0) -> list[str]:
    """Publish `count` events on the server's bus, from the server's loop."""
    bus: EventBus = server.app.state.core.ctx.bus
    loop = server.server.servers[0].get_loop()

    async def run() -> list[str]:
        return [await bus.publish("hosts", {"n": n, "pad": "x" * size}) for n in range(count)]

    return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(run(), loop))


async def prometheus(server: RunningServer, name: str) -> float:
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        text = (await http.get("/metrics")).text
    found = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
    assert found, name
    return float(found.group(1))


async def until_dropped(server: RunningServer) -> None:
    name = "quarterdeck_ws_slow_clients_dropped_total"
    async with asyncio.timeout(10):
        while await prometheus(server, name) < 1:  # noqa: ASYNC110 - another process's counter
            await asyncio.sleep(0.05)


# -- authentication and topics -------------------------------------------------


@pytest.mark.asyncio
async def test_auth_by_header_or_first_message_and_events_carry_ids(stack: Stack) -> None:
    token = stack.tokens["operator"]
    async with (
        events(stack, token, query="?topics=settings") as by_header,
        events(stack, token, query="?topics=settings", header=False) as by_message,
    ):
        for ws in (by_header, by_message):
            assert (await subscribed(ws))["topics"] == ["settings"]
        assert await prometheus(stack.server, "quarterdeck_websockets_open") == 2
        await change_setting(stack.server, stack.tokens["admin"], 7)
        got = [await message(by_header), await message(by_message)]
    for event in got:
        assert set(event) == {"id", "topic", "ts", "data"}
        assert (event["topic"], event["data"]["key"]) == ("settings", "collector.interval_seconds")
    assert got[0] == got[1]
    assert await prometheus(stack.server, "quarterdeck_ws_events_sent_total") >= 2


REFUSED = [
    # query, token (a role's, or literal), authenticate by header, close code
    ("", "not-a-token", True, 4401),
    ("", "not-a-token", False, 4401),
    ("", None, False, 4401),  # the first message is not an auth message
    ("?topics=settings,nonsense", "viewer", True, 4400),
    ("?since=x%27%20OR%201%3D1", "viewer", True, 4400),
    ("?topics=audit", "viewer", True, 4403),
]


@pytest.mark.asyncio
async def test_refused_connections_close_with_their_code(stack: Stack) -> None:
    for query, token, header, code in REFUSED:
        real = stack.tokens.get(token or "", token)
        async with events(stack, real, query=query, header=header) as ws:
            if token is None:
                await ws.send(json.dumps({"type": "hello"}))
            assert (await closed_with(ws))[0] == code, (query, token, header)
    assert await prometheus(stack.server, "quarterdeck_websockets_open") == 0


@pytest.mark.asyncio
async def test_viewer_does_not_receive_audit_events(stack: Stack) -> None:
    async with (
        events(stack, stack.tokens["viewer"]) as viewer,
        events(stack, stack.tokens["admin"], query="?topics=settings,audit") as admin,
    ):
        assert "audit" not in (await subscribed(viewer))["topics"]
        await subscribed(admin)
        await change_setting(stack.server, stack.tokens["admin"], 9)
        admin_topics = sorted([(await message(admin))["topic"], (await message(admin))["topic"]])
        assert admin_topics == ["audit", "settings"]
        assert (await message(viewer))["topic"] == "settings"
        # Had the first change's audit event reached the viewer, it would come
        # before the second change's settings event.
        await change_setting(stack.server, stack.tokens["admin"], 10)
        assert (await message(viewer))["topic"] == "settings"


@pytest.mark.asyncio
async def test_heartbeat_when_idle(stack: Stack) -> None:
    stack.server.app.state.event_stream = StreamOptions(heartbeat=0.2)
    async with events(stack, stack.tokens["viewer"]) as ws:
        await subscribed(ws)
        beat = await message(ws, heartbeats=True)
    assert beat["type"] == "heartbeat"
    assert beat["ts"] > 1e9


# -- resume --------------------------------------------------------------------


@pytest.mark.asyncio
async def test_reconnect_with_since_receives_exactly_the_missed_events(stack: Stack) -> None:
    admin = stack.tokens["admin"]
    async with events(stack, admin) as witness:  # stays connected throughout
        await subscribed(witness)
        async with events(stack, admin) as ws:
            await subscribed(ws)
            await change_setting(stack.server, admin, 3)
            first, second = await message(ws), await message(ws)
        last_seen = second["id"]
        for value in (4, 5, 6):  # missed while disconnected
            await change_setting(stack.server, admin, value)
        seen = [await message(witness) for _ in range(8)]
        assert seen[:2] == [first, second]
        async with events(stack, admin, query=f"?since={last_seen}") as ws:
            assert (await subscribed(ws))["since"] == last_seen
            missed = [await message(ws) for _ in range(6)]
            await change_setting(stack.server, admin, 7)
            live = [await message(ws), await message(ws)]
        assert missed == seen[2:]
        assert [e["data"]["version"] for e in missed if e["topic"] == "settings"] == [2, 3, 4]
        assert live == [await message(witness), await message(witness)]


@pytest.mark.asyncio
async def test_resume_from_the_subscribed_id_before_any_event(stack: Stack) -> None:
    admin = stack.tokens["admin"]
    async with events(stack, admin, query="?topics=settings") as ws:
        since = (await subscribed(ws))["since"]
    await change_setting(stack.server, admin, 4)
    async with events(stack, admin, query=f"?topics=settings&since={since}") as ws:
        await subscribed(ws)
        assert (await message(ws))["data"]["version"] == 1


@pytest.mark.asyncio
async def test_since_no_longer_retained_gets_reset_then_live_events(small_stack: Stack) -> None:
    stack = small_stack
    (old,) = await publish(stack.server, 1)
    # Redis trims whole stream nodes (100 entries), so go well past one.
    await publish(stack.server, 300)
    async with events(stack, stack.tokens["admin"], query=f"?since={old}") as ws:
        await subscribed(ws)
        assert await message(ws) == {"type": "reset"}
        await change_setting(stack.server, stack.tokens["admin"], 8)
        topics = {(await message(ws))["topic"], (await message(ws))["topic"]}
    assert topics == {"settings", "audit"}


# -- backpressure --------------------------------------------------------------


@pytest.mark.asyncio
async def test_slow_client_is_cut_off_with_4008_and_resumes_without_loss(stack: Stack) -> None:
    server = stack.server
    options = StreamOptions(queue_size=16, slow_after=0.3, close_timeout=20)
    server.app.state.event_stream = options
    count, size = 600, 16_000  # ~10 MB, more than the socket buffers take
    async with events(stack, stack.tokens["admin"], query="?topics=hosts", max_queue=1) as slow:
        await subscribed(slow)
        # The client reads nothing more while all of this is published.
        published = await publish(server, count, size)
        await until_dropped(server)
        received = [message["id"] for message in await drain(slow)]
    frame = slow.protocol.close_rcvd
    assert frame is not None
    assert frame.code == 4008
    # What reached the client before the close is a prefix of what was published,
    # and far from all of it: the server held at most its queue for this client.
    assert received == published[: len(received)]
    assert len(received) < count - options.queue_size
    assert frame.reason == f"too slow: reconnect with since={received[-1]}"
    assert await prometheus(server, "quarterdeck_websockets_open") == 0

    resume = frame.reason.rsplit("=", 1)[1]
    async with events(stack, stack.tokens["admin"], query=f"?topics=hosts&since={resume}") as ws:
        await subscribed(ws)
        rest = [(await message(ws))["id"] for _ in range(count - len(received))]
    assert received + rest == published

"""A server's event stream that survives a dropped connection.

`follow()` yields the events of `WS /api/v1/events` (the protocol is in
`backend/api/routes/events.py`). When the connection drops it reconnects,
with exponential backoff and jitter, passing the id of the last event it
yielded as `since`: the server then sends exactly what was missed, in
order, or `reset` when that is no longer retained, which is yielded as a
`StreamReset` for the caller to reload. Meanwhile the link is reported
down (RECONNECTING) and up again once the server has subscribed us.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from backend.domain.errors import Forbidden, InvalidInput, Unauthenticated
from backend.domain.events import Event, StreamReset

log = logging.getLogger(__name__)

CLOSE_BAD_REQUEST = 4400
CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403
MAX_MESSAGE = 64 * 2**20
"""A metrics event can carry thousands of points."""


@dataclass(frozen=True, slots=True)
class Backoff:
    """Delays between reconnection attempts: doubling, capped, jittered.

    The jitter ("equal jitter": half fixed, half random) keeps a hundred
    consoles that lost the same server from reconnecting in lockstep.
    """

    first: float = 0.5
    most: float = 30.0

    def delay(self, attempt: int) -> float:
        cap = min(self.most, self.first * 2.0 ** min(attempt, 30))
        return cap / 2 + random.uniform(0, cap / 2)


@dataclass(frozen=True, slots=True)
class StreamLink:
    """What the stream needs from its client: credentials and a place to report the link."""

    url: str
    """ws:// or wss:// URL of /api/v1/events."""
    ssl: ssl.SSLContext | None
    token: Callable[[], Awaitable[str]]
    """A current access token (renewed when due)."""
    renew: Callable[[str], Awaitable[None]]
    """Renew the session after the server refused `token` (raises when it has ended)."""
    up: Callable[[], None]
    down: Callable[[str], None]
    backoff: Backoff
    open_timeout: float = 10.0
    idle_timeout: float = 20.0
    """Seconds without any message (the server sends a heartbeat every 5 s) after
    which the connection is taken for dead and replaced."""


async def follow(
    link: StreamLink, topics: Sequence[str], since: str | None
) -> AsyncIterator[Event | StreamReset]:
    """Events of `topics` after `since`, across reconnections, until the caller stops."""
    last = since
    attempt = 0
    renewed = False
    while True:
        token = await link.token()
        query = {"topics": ",".join(topics)}
        if last is not None:
            query["since"] = last
        url = f"{link.url}?{urlencode(query)}"
        reason = "the event stream ended"
        try:
            async with connect(
                url,
                additional_headers={"Authorization": f"Bearer {token}"},
                ssl=link.ssl,
                open_timeout=link.open_timeout,
                max_size=MAX_MESSAGE,
                compression=None,
            ) as connection:
                while True:
                    message = await _receive(connection, link.idle_timeout)
                    kind = message.get("type")
                    if kind == "subscribed":
                        attempt = 0
                        renewed = False
                        if last is None:
                            last = str(message.get("since"))
                        link.up()
                    elif kind == "reset":
                        yield StreamReset(last)
                    elif kind is None and "id" in message:
                        event = Event(
                            id=str(message["id"]),
                            topic=str(message["topic"]),
                            ts=float(message["ts"]),
                            data=dict(message.get("data") or {}),
                        )
                        last = event.id
                        yield event
                    # heartbeats, and types this console does not know yet: nothing to do
        except ConnectionClosed as closed:
            code = closed.rcvd.code if closed.rcvd is not None else None
            text = closed.rcvd.reason if closed.rcvd is not None else ""
            _refuse(code, text)
            if code == CLOSE_UNAUTHENTICATED:
                if renewed:  # refused even with a fresh token: the session is over
                    raise Unauthenticated(text or "the session has ended; sign in again") from None
                await link.renew(token)
                renewed = True
                continue
            reason = f"the event stream closed ({code}{': ' + text if text else ''})"
        except (OSError, InvalidHandshake, TimeoutError) as error:
            reason = f"the event stream cannot connect: {error or type(error).__name__}"
        link.down(reason)
        log.info("%s; reconnecting", reason)
        await asyncio.sleep(link.backoff.delay(attempt))
        attempt += 1


def _refuse(code: int | None, reason: str) -> None:
    """Raise the error a refusing close code means (reconnecting would not help)."""
    if code == CLOSE_FORBIDDEN:
        raise Forbidden(reason or "no permission for these topics")
    if code == CLOSE_BAD_REQUEST:
        raise InvalidInput(reason or "the event stream request was refused")


async def _receive(connection: ClientConnection, idle: float) -> dict[str, Any]:
    """The next JSON object; ConnectionClosed when it closes, TimeoutError when silent."""
    while True:
        async with asyncio.timeout(idle):
            raw = await connection.recv()
        message = json.loads(raw)
        if isinstance(message, dict):
            return message

"""A server's event stream that subscribes at once and survives dropped connections.

`RemoteEventStream` reads `WS /api/v1/events` (the protocol is in
`backend/api/routes/events.py`) in a task of its own, started when the
stream is made, into a bounded queue the caller reads. `ready()` returns
when the server's `subscribed` message has arrived: the server positions the
subscription before sending it, so every event published after `ready()`
reaches the caller. When the queue is full the task stops reading the
socket, so a caller that does not keep up holds back the server, which cuts
it off (4008) after a while; reconnecting with `since` then loses nothing.

Once subscribed, a connection that drops, stalls, or is closed by the
server (too slow, restarting, database or bus unavailable) is replaced, with
exponential backoff and jitter, passing the id of the last event received as
`since`: the server then sends exactly what was missed, in order, or `reset`
when that is no longer retained, which is yielded as a `StreamReset` for the
caller to reload. Meanwhile the client reports RECONNECTING, and LIVE again
once the server has subscribed the stream anew.

Before the first subscription nothing is retried: the caller is opening a
view and wants to hear now that the server cannot be reached (`Unreachable`)
or cannot serve events (`Unavailable`), as its other requests would say.
Refusals (4403 forbidden, 4400 bad request, a session that has ended) end the
stream at any time.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import ssl
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from backend.domain.errors import Forbidden, InvalidInput, Unauthenticated, Unavailable
from backend.domain.events import Event, StreamReset
from console.client.wire import unreachable

log = logging.getLogger(__name__)

CLOSE_BAD_REQUEST = 4400
CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403
MAX_MESSAGE = 64 * 2**20
"""A metrics event can carry thousands of points."""
STREAM_BUFFER = 256
"""Messages a stream may read ahead of its caller before it stops reading the socket."""
CANCEL_AGAIN = 0.05
"""Seconds after which a cancellation that did not end the reading task is repeated."""


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
    """What a stream needs from its client: credentials, and where to report the link."""

    url: str
    """ws:// or wss:// URL of /api/v1/events."""
    where: str
    """host:port, for messages."""
    ssl: ssl.SSLContext | None
    token: Callable[[], Awaitable[str]]
    """A current access token (renewed when due)."""
    renew: Callable[[str], Awaitable[None]]
    """Renew the session after the server refused `token` (raises when it has ended)."""
    up: Callable[[RemoteEventStream], None]
    """The stream is subscribed (again)."""
    down: Callable[[RemoteEventStream, str], None]
    """The stream lost its connection and is reconnecting; why, for a person."""
    ended: Callable[[RemoteEventStream], None]
    """The stream is over (closed, or refused): forget it."""
    backoff: Backoff
    open_timeout: float = 10.0
    idle_timeout: float = 20.0
    """Seconds without any message (the server sends a heartbeat every 5 s) after
    which the connection is taken for dead and replaced."""
    close_timeout: float = 2.0
    """Seconds to wait for the server's goodbye when closing: a dead link must not
    hold up `aclose()`."""


@dataclass(frozen=True, slots=True)
class _End:
    error: BaseException | None = None


def _retrieve(future: asyncio.Future[None]) -> None:
    """Mark a failure as seen: a stream nobody waited on is not an error to log."""
    if not future.cancelled():
        future.exception()


class RemoteEventStream:
    """A `console.client.EventStream` over the server's WebSocket (see the module doc)."""

    def __init__(
        self,
        link: StreamLink,
        topics: Sequence[str],
        since: str | None,
        *,
        buffer: int = STREAM_BUFFER,
    ) -> None:
        self._link = link
        self._topics = list(topics)
        self._last = since
        """Where a new connection resumes: the last event received, or the start."""
        self._buffer = buffer
        self._queue: asyncio.Queue[Event | StreamReset | _End] | None = None
        self._subscribed: asyncio.Future[None] | None = None
        self._reader: asyncio.Task[None] | None = None
        self._closed = False
        self._attempt = 0
        """Reconnection attempts since the last subscription: the backoff's exponent."""
        self._renewed = False
        """The session was renewed after a 4401 since the last subscription."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # made outside a loop: starts at the first ready() or read
        self._start(loop)

    @property
    def closed(self) -> bool:
        return self._closed

    def _start(self, loop: asyncio.AbstractEventLoop) -> asyncio.Future[None]:
        self._queue = asyncio.Queue(self._buffer)
        subscribed: asyncio.Future[None] = loop.create_future()
        subscribed.add_done_callback(_retrieve)
        self._subscribed = subscribed
        self._reader = loop.create_task(self._run(), name="remote-event-stream")
        return subscribed

    # -- the caller's side ------------------------------------------------------------

    def __aiter__(self) -> RemoteEventStream:
        return self

    async def ready(self) -> None:
        """Return once the server has subscribed the stream; raise what prevented it."""
        subscribed = self._subscribed
        if subscribed is None:
            if self._closed:
                return
            subscribed = self._start(asyncio.get_running_loop())
        await asyncio.shield(subscribed)

    async def __anext__(self) -> Event | StreamReset:
        if self._closed:
            raise StopAsyncIteration
        if self._subscribed is None:
            self._start(asyncio.get_running_loop())
        queue, subscribed = self._queue, self._subscribed
        assert queue is not None
        assert subscribed is not None
        try:
            await asyncio.shield(subscribed)
            item = await queue.get()
        except asyncio.CancelledError:
            await asyncio.shield(self.aclose())
            raise
        except BaseException:
            self._closed = True
            raise
        if self._closed:  # by aclose() while this read waited
            raise StopAsyncIteration
        if isinstance(item, _End):
            self._closed = True
            if item.error is not None:
                raise item.error
            raise StopAsyncIteration
        return item

    async def aclose(self) -> None:
        """Stop reading and close the connection (waiting at most `close_timeout`)."""
        self._closed = True
        subscribed, queue = self._subscribed, self._queue
        if subscribed is not None and not subscribed.done():
            subscribed.set_result(None)  # a pending ready() returns
        if queue is not None:
            with contextlib.suppress(asyncio.QueueFull):  # full: the reader is not waiting
                queue.put_nowait(_End())  # a read waiting meanwhile ends
        reader, self._reader = self._reader, None
        if reader is not None:
            # Cancelled again until it ends: a cancellation swallowed on the way
            # down (some libraries' timeouts do) must not leave it reading.
            while not reader.done():
                reader.cancel()
                await asyncio.wait({reader}, timeout=CANCEL_AGAIN)
            with contextlib.suppress(asyncio.CancelledError):
                await reader
        self._link.ended(self)

    # -- the reading task -------------------------------------------------------------

    async def _run(self) -> None:
        try:
            await self._follow()
        except asyncio.CancelledError:
            raise
        except Exception as error:  # noqa: BLE001 - handed to the caller, who raises it
            subscribed, queue = self._subscribed, self._queue
            assert subscribed is not None
            assert queue is not None
            if not subscribed.done():
                subscribed.set_exception(error)
            else:
                await queue.put(_End(error))
        finally:
            self._link.ended(self)

    async def _follow(self) -> None:
        """Connect, read into the queue, reconnect; returns never, raises refusals."""
        link = self._link
        subscribed = self._subscribed
        assert subscribed is not None
        while True:
            reason = "the event stream ended"
            try:
                token = await link.token()
                await self._read(token, subscribed)
            except ConnectionClosed as closed:
                code = closed.rcvd.code if closed.rcvd is not None else None
                text = closed.rcvd.reason if closed.rcvd is not None else ""
                _refuse(code, text)
                said = f"{code}{': ' + text if text else ''}"
                if code == CLOSE_UNAUTHENTICATED:
                    if self._renewed:  # refused even with a fresh token: the session is over
                        raise Unauthenticated(
                            text or "the session has ended; sign in again"
                        ) from None
                    self._renewed = True
                    try:
                        await link.renew(token)
                    except Unavailable as error:  # the server is unreachable or down
                        if not subscribed.done():
                            raise
                        reason = error.message
                    else:
                        continue
                elif code is None:  # no close frame: the connection was lost
                    if not subscribed.done():
                        raise unreachable(closed, link.where) from closed
                    reason = "the event stream connection was lost"
                elif not subscribed.done():  # 1011, 1013: the database or bus is down
                    raise Unavailable(
                        f"the server cannot serve events right now ({said})",
                        details={"close_code": code},
                    ) from None
                else:
                    reason = f"the event stream closed ({said})"
            except (OSError, InvalidHandshake, TimeoutError) as error:
                if not subscribed.done():
                    raise unreachable(error, link.where) from error
                reason = f"the event stream cannot connect: {error or type(error).__name__}"
            except Unavailable as error:  # renewing the session before connecting failed
                if not subscribed.done():
                    raise
                reason = error.message
            link.down(self, reason)
            log.info("%s; reconnecting", reason)
            await asyncio.sleep(link.backoff.delay(self._attempt))
            self._attempt += 1

    async def _read(self, token: str, subscribed: asyncio.Future[None]) -> None:
        """One connection: its messages into the queue until it ends (by raising)."""
        link = self._link
        queue = self._queue
        assert queue is not None
        query = {"topics": ",".join(self._topics)}
        if self._last is not None:
            query["since"] = self._last
        async with connect(
            f"{link.url}?{urlencode(query)}",
            additional_headers={"Authorization": f"Bearer {token}"},
            ssl=link.ssl,
            open_timeout=link.open_timeout,
            close_timeout=link.close_timeout,
            max_size=MAX_MESSAGE,
            compression=None,
        ) as connection:
            while True:
                message = await _receive(connection, link.idle_timeout)
                kind = message.get("type")
                if kind == "subscribed":
                    if self._last is None:
                        self._last = str(message.get("since"))
                    self._attempt, self._renewed = 0, False
                    if not subscribed.done():
                        subscribed.set_result(None)
                    link.up(self)
                elif kind == "reset":
                    await queue.put(StreamReset(self._last))
                elif kind is None and "id" in message:
                    event = Event(
                        id=str(message["id"]),
                        topic=str(message["topic"]),
                        ts=float(message["ts"]),
                        data=dict(message.get("data") or {}),
                    )
                    self._last = event.id
                    await queue.put(event)
                # heartbeats, and types this console does not know yet: nothing to do


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

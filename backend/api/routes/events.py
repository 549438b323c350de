"""The event stream: `WS /api/v1/events?topics=a,b&since=<id>`.

WebSockets do not appear in the OpenAPI schema, so this is their reference.

Authentication
    `Authorization: Bearer <access token or API key>` on the upgrade request,
    or, for clients that cannot set headers, a first message
    `{"type": "auth", "token": "..."}` within 10 seconds.

Query
    `topics`: comma-separated, any of metrics, hosts, alerts, users,
    settings, audit; default all. Topics the caller may not read are left out
    (a viewer gets no audit events); when none remain the server closes with
    4403.
    `since`: the id of the last event the client received. The stream then
    starts right after it: nothing missed, nothing repeated. Without it the
    stream starts at "now".

Server messages (JSON text frames). Clients ignore `type`s they do not know.
    `{"type": "subscribed", "since": "<id>", "topics": [...]}`: first, once.
        Events after `since` follow; a client that has received no event yet
        resumes from this id.
    `{"id", "topic", "ts", "data"}`: an event. `ts` is epoch seconds (UTC);
        `id` is what to pass as `since` when reconnecting.
    `{"type": "reset"}`: events between `since` and now are no longer
        retained (or were lost upstream). Reload state, then keep reading:
        later events follow on this connection.
    `{"type": "heartbeat", "ts": <epoch seconds>}`: after 5 s without any
        other message, so a client notices a dead server or network within
        seconds (reconnect, with `since`, after about three missed).

Client messages after authentication are ignored. Dead clients are noticed by
the WebSocket protocol's own pings (uvicorn's `ws_ping_interval` and
`ws_ping_timeout`).

Backpressure: each connection has a bounded send queue (1,000 messages). When
it stays full for 2 s, the client is too slow and is closed with 4008 and the
reason `too slow: reconnect with since=<id>`, the id of the last event it was
sent; reconnecting with that id loses nothing while it is retained. So a slow
or stuck client costs the server at most its queue and socket buffers.

Close codes
    4400 bad request (unknown topic, malformed `since`)
    4401 unauthenticated (no, invalid or expired credentials, or no `auth`
         message in time)
    4403 forbidden (no permission for any of the requested topics)
    4008 too slow (see above)
    1011 server error (e.g. the event bus is unreachable): reconnect with `since`
    1012 the server is restarting: reconnect with `since`
    1013 the server cannot reach its database or Redis right now: retry later
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncGenerator
from dataclasses import dataclass

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from starlette.websockets import WebSocketState

from backend.api.observability import ServerMetrics
from backend.bus.base import BusMessage
from backend.core import Core
from backend.domain.errors import Forbidden, InvalidInput, QuarterdeckError
from backend.domain.events import Event, StreamReset
from backend.domain.principal import Principal

router = APIRouter(tags=["events"])
log = logging.getLogger(__name__)

CLOSE_BAD_REQUEST = 4400
CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_TOO_SLOW = 4008
CLOSE_SERVER_ERROR = 1011
CLOSE_RESTARTING = 1012
CLOSE_TRY_AGAIN = 1013


class _Unavailable(Exception):
    """The database or Redis could not be asked who the client is."""


_RESET = json.dumps({"type": "reset"})
_GONE = (WebSocketDisconnect, OSError, RuntimeError)
"""What sending to or reading from a client that has gone raises (Starlette
raises RuntimeError for a send after the server side closed)."""


@dataclass(frozen=True, slots=True)
class StreamOptions:
    """Timings and bounds of the stream; an app may set its own as `app.state.event_stream`."""

    queue_size: int = 1000
    """Messages queued per connection: the most a slow client makes the server hold."""
    slow_after: float = 2.0
    """Seconds the queue may stay full. A client catching up on a backlog reads
    slower than the server can queue but keeps making progress; a stuck one does not."""
    heartbeat: float = 5.0
    """Seconds without any message after which a heartbeat is sent."""
    auth_timeout: float = 10.0
    close_timeout: float = 10.0
    """Seconds to get the 4008 close frame past a full socket buffer before giving up."""


def _options(websocket: WebSocket) -> StreamOptions:
    options = getattr(websocket.app.state, "event_stream", None)
    return options if isinstance(options, StreamOptions) else StreamOptions()


class _EventTexts:
    """Each event's JSON, made once per process instead of once per client.

    A metrics event can carry thousands of points; encoding it again for each
    of a hundred clients would cost more than everything else in the fan-out.
    Only recent events are kept: all live clients ask within milliseconds.
    """

    def __init__(self, size: int = 64) -> None:
        self._size = size
        self._texts: dict[str, str] = {}

    def text(self, event: Event) -> str:
        text = self._texts.get(event.id)
        if text is None:
            text = json.dumps(
                {"id": event.id, "topic": event.topic, "ts": event.ts, "data": event.data},
                separators=(",", ":"),
            )
            if len(self._texts) >= self._size:
                del self._texts[next(iter(self._texts))]
            self._texts[event.id] = text
        return text


def _event_texts(websocket: WebSocket) -> _EventTexts:
    state = websocket.app.state
    texts = getattr(state, "event_texts", None)
    if not isinstance(texts, _EventTexts):
        texts = state.event_texts = _EventTexts()
    return texts


class _TooSlow(Exception):
    """The connection's queue stayed full: the client does not keep up."""


@dataclass(slots=True)
class _Progress:
    resume: str
    """Where the client would resume without loss: the last event id sent, or the start."""


async def _authenticate(websocket: WebSocket, core: Core, wait: float) -> Principal | None:
    header = websocket.headers.get("authorization", "")
    token = header[7:] if header.lower().startswith("bearer ") else None
    if token is None:
        try:
            first = await asyncio.wait_for(websocket.receive_json(), wait)
        except (TimeoutError, json.JSONDecodeError, WebSocketDisconnect, KeyError):
            return None
        if isinstance(first, dict) and first.get("type") == "auth":
            token = str(first.get("token", ""))
    if not token:
        return None
    try:
        return await core.auth.authenticate(token)
    except QuarterdeckError:
        return None
    except Exception:
        # The database or Redis is down: close as "try again later", not as a crash.
        log.warning("could not authenticate an event stream", exc_info=True)
        raise _Unavailable from None


@router.websocket("/events")
async def events(websocket: WebSocket, topics: str = "", since: str | None = None) -> None:
    """Live events with resume (`since`); the protocol is in this module's docstring."""
    core: Core = websocket.app.state.core
    metrics: ServerMetrics = websocket.app.state.metrics
    options = _options(websocket)
    await websocket.accept()
    try:
        principal = await _authenticate(websocket, core, options.auth_timeout)
    except _Unavailable:
        await _close(websocket, CLOSE_TRY_AGAIN, "the server cannot reach its database; retry")
        return
    if principal is None:
        await _close(websocket, CLOSE_UNAUTHENTICATED, "authentication required")
        return
    requested = [topic for topic in topics.split(",") if topic]
    try:
        subscription = await core.events.subscribe(principal, requested, since)
    except InvalidInput as error:
        await _close(websocket, CLOSE_BAD_REQUEST, error.message[:120])
        return
    except Forbidden as error:
        await _close(websocket, CLOSE_FORBIDDEN, error.message[:120])
        return
    except Exception:
        log.exception("event stream: the bus is unreachable")
        await _close(websocket, CLOSE_SERVER_ERROR, "event bus unavailable; reconnect")
        return
    metrics.websockets.inc()
    try:
        await _stream(
            websocket,
            subscription.messages,
            subscription.topics,
            subscription.since,
            options,
            metrics,
        )
    finally:
        metrics.websockets.dec()


async def _stream(
    websocket: WebSocket,
    subscription: AsyncGenerator[BusMessage, None],
    topics: list[str],
    start: str,
    options: StreamOptions,
    metrics: ServerMetrics,
) -> None:
    queue: asyncio.Queue[tuple[str, str | None]] = asyncio.Queue(options.queue_size)
    hello = {"type": "subscribed", "since": start, "topics": topics}
    queue.put_nowait((json.dumps(hello), None))
    progress = _Progress(resume=start)
    pump = asyncio.create_task(_pump(subscription, queue, _event_texts(websocket), options))
    sender = asyncio.create_task(_send(websocket, queue, progress, options, metrics))
    listener = asyncio.create_task(_listen(websocket))
    tasks = (pump, sender, listener)
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    first = pump if pump in done else next(iter(done))
    error = first.exception()
    if first is pump and isinstance(error, _TooSlow):
        metrics.ws_dropped.inc()
        while not queue.empty():  # free what it would have been sent before waiting
            queue.get_nowait()
        log.warning(
            "event stream client too slow, disconnected",
            extra={"fields": {"client": _client(websocket), "resume": progress.resume}},
        )
        reason = f"too slow: reconnect with since={progress.resume}"
        await _close(websocket, CLOSE_TOO_SLOW, reason, options.close_timeout)
    elif first is pump and error is None:
        await _close(websocket, CLOSE_RESTARTING, "server restarting", options.close_timeout)
    elif error is not None and not isinstance(error, _GONE):
        log.error("event stream failed", exc_info=error)
        await _close(
            websocket, CLOSE_SERVER_ERROR, f"server error; reconnect with since={progress.resume}"
        )
    # Otherwise the client went away (the listener saw it, or a send failed).


async def _pump(
    subscription: AsyncGenerator[BusMessage, None],
    queue: asyncio.Queue[tuple[str, str | None]],
    texts: _EventTexts,
    options: StreamOptions,
) -> None:
    """Bus → queue. Ends when the bus closes; raises _TooSlow when the client stalls."""
    async with contextlib.aclosing(subscription):
        async for message in subscription:
            if isinstance(message, StreamReset):
                item: tuple[str, str | None] = (_RESET, None)
            else:
                item = (texts.text(message), message.id)
            try:
                queue.put_nowait(item)
            except asyncio.QueueFull:
                try:
                    async with asyncio.timeout(options.slow_after):
                        await queue.put(item)
                except TimeoutError:
                    raise _TooSlow from None


async def _send(
    websocket: WebSocket,
    queue: asyncio.Queue[tuple[str, str | None]],
    progress: _Progress,
    options: StreamOptions,
    metrics: ServerMetrics,
) -> None:
    """Queue → client, with a heartbeat whenever the queue stays empty that long."""
    while True:
        try:
            async with asyncio.timeout(options.heartbeat):
                text, event_id = await queue.get()
        except TimeoutError:
            text = json.dumps({"type": "heartbeat", "ts": time.time()})
            event_id = None
        await websocket.send_text(text)
        if event_id is not None:
            progress.resume = event_id
            metrics.events_sent.inc()


async def _listen(websocket: WebSocket) -> None:
    """Read until the client goes away: uvicorn stops reading the socket (and so
    answering pings) while a received message waits to be taken."""
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return


async def _close(websocket: WebSocket, code: int, reason: str, grace: float = 5.0) -> None:
    """Close, unless the client is gone; give up after `grace` s when its socket is full."""
    if websocket.client_state is not WebSocketState.CONNECTED:
        return
    with contextlib.suppress(TimeoutError, WebSocketDisconnect, RuntimeError, OSError):
        async with asyncio.timeout(grace):
            await websocket.close(code, reason)


def _client(websocket: WebSocket) -> str:
    client = websocket.client
    return f"{client.host}:{client.port}" if client else "unknown"

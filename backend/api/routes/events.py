"""The event stream: `WS /api/v1/events?topics=a,b&since=<id>`.

Messages are `{"id", "topic", "ts", "data"}`, or `{"type": "reset"}` when
`since` is no longer retained (the client reloads its state). The client
authenticates with the Authorization header, or, where a client cannot set
headers, with a first message `{"type": "auth", "token": "..."}`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from backend.core import Core
from backend.domain.errors import QuarterdeckError
from backend.domain.events import Event, StreamReset, Topic
from backend.domain.permissions import Permission
from backend.domain.principal import Principal

router = APIRouter(tags=["events"])
log = logging.getLogger(__name__)

AUTH_TIMEOUT = 10.0
CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_BAD_REQUEST = 4400

TOPIC_PERMISSIONS: dict[str, Permission] = {
    Topic.METRICS: Permission.METRICS_READ,
    Topic.HOSTS: Permission.HOSTS_READ,
    Topic.ALERTS: Permission.ALERTS_READ,
    Topic.USERS: Permission.USERS_READ,
    Topic.SETTINGS: Permission.SETTINGS_READ,
    Topic.AUDIT: Permission.AUDIT_READ,
}


async def _authenticate(websocket: WebSocket, core: Core) -> Principal | None:
    header = websocket.headers.get("authorization", "")
    token = header[7:] if header.lower().startswith("bearer ") else None
    if token is None:
        try:
            first = await asyncio.wait_for(websocket.receive_json(), AUTH_TIMEOUT)
        except (TimeoutError, json.JSONDecodeError, WebSocketDisconnect):
            return None
        if isinstance(first, dict) and first.get("type") == "auth":
            token = str(first.get("token", ""))
    if not token:
        return None
    try:
        return await core.auth.authenticate(token)
    except QuarterdeckError:
        return None


@router.websocket("/events")
async def events(websocket: WebSocket, topics: str = "", since: str | None = None) -> None:
    core: Core = websocket.app.state.core
    await websocket.accept()
    principal = await _authenticate(websocket, core)
    if principal is None:
        await websocket.close(CLOSE_UNAUTHENTICATED, "authentication required")
        return
    wanted = [topic for topic in topics.split(",") if topic] or list(TOPIC_PERMISSIONS)
    unknown = [topic for topic in wanted if topic not in TOPIC_PERMISSIONS]
    if unknown:
        await websocket.close(CLOSE_BAD_REQUEST, f"unknown topics: {', '.join(unknown)}")
        return
    allowed = [topic for topic in wanted if principal.can(TOPIC_PERMISSIONS[topic])]
    if not allowed:
        await websocket.close(CLOSE_FORBIDDEN, "no permission for these topics")
        return
    gauge = websocket.app.state.metrics.websockets
    gauge.inc()
    try:
        async with contextlib.aclosing(core.ctx.bus.subscribe(allowed, since)) as stream:
            async for message in stream:
                if isinstance(message, StreamReset):
                    await websocket.send_json({"type": "reset"})
                    continue
                assert isinstance(message, Event)
                await websocket.send_json(
                    {
                        "id": message.id,
                        "topic": message.topic,
                        "ts": message.ts,
                        "data": message.data,
                    }
                )
    except WebSocketDisconnect:
        pass
    finally:
        gauge.dec()

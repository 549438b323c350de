"""Who may follow which live events, and from where a stream starts.

The rule lives here rather than in the WebSocket route so that the embedded
console (which subscribes in-process) and the server apply the same one: a
viewer gets no audit events either way.
"""

from __future__ import annotations

import re
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass

from backend.bus.base import BusMessage
from backend.domain.errors import Forbidden, InvalidInput
from backend.domain.events import Topic
from backend.domain.permissions import Permission
from backend.domain.principal import Principal
from backend.services.context import ServiceContext

TOPIC_PERMISSIONS: dict[str, Permission] = {
    Topic.METRICS: Permission.METRICS_READ,
    Topic.HOSTS: Permission.HOSTS_READ,
    Topic.ALERTS: Permission.ALERTS_READ,
    Topic.USERS: Permission.USERS_READ,
    Topic.SETTINGS: Permission.SETTINGS_READ,
    Topic.AUDIT: Permission.AUDIT_READ,
}

EVENT_ID = re.compile(r"[0-9]{1,20}(-[0-9]{1,20})?")
"""Memory bus ids ("42") and Redis stream ids ("1700000000000-0"); bounded, so a
`since` echoed back (in a WebSocket close reason) stays short."""
ORIGIN = "0"
"""An id before every id both buses issue."""


@dataclass(frozen=True, slots=True)
class Subscription:
    """An authorized stream: what it carries, where it starts, and the messages."""

    topics: list[str]
    """The requested topics the principal may read (the others are left out)."""
    since: str
    """The id the stream starts after: the caller's `since`, or the newest id at
    subscription time, so a client can resume from it before its first event."""
    messages: AsyncGenerator[BusMessage, None]


class EventsService:
    def __init__(self, ctx: ServiceContext) -> None:
        self._ctx = ctx

    @staticmethod
    def allowed_topics(principal: Principal, topics: Sequence[str]) -> list[str]:
        """The topics of `topics` (all when empty) that `principal` may read.

        Unreadable ones are dropped rather than refused, so a console asking
        for everything still gets what its role allows; `Forbidden` only
        when nothing is left, `InvalidInput` for a topic that does not exist.
        """
        wanted = list(topics) or list(TOPIC_PERMISSIONS)
        unknown = [topic for topic in wanted if topic not in TOPIC_PERMISSIONS]
        if unknown:
            raise InvalidInput(
                f"unknown topics: {', '.join(unknown)}"[:120],
                details={"field": "topics", "unknown": unknown},
            )
        allowed = [topic for topic in wanted if principal.can(TOPIC_PERMISSIONS[topic])]
        if not allowed:
            raise Forbidden("no permission for these topics", details={"topics": wanted})
        return allowed

    async def subscribe(
        self, principal: Principal, topics: Sequence[str], since: str | None = None
    ) -> Subscription:
        """Check the request now (not at the first message), then open the stream.

        Raises `InvalidInput` (unknown topic, malformed `since`), `Forbidden`
        (no readable topic), or whatever the bus raises when unreachable.
        """
        allowed = self.allowed_topics(principal, topics)
        if since is not None and not EVENT_ID.fullmatch(since):
            raise InvalidInput("since is not an event id", details={"field": "since"})
        start = since if since is not None else (await self._ctx.bus.last_id() or ORIGIN)
        return Subscription(allowed, start, self._ctx.bus.subscribe(allowed, start))

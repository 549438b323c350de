"""What the bus carries, and the topics it carries it on."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class Topic(StrEnum):
    METRICS = "metrics"
    HOSTS = "hosts"
    ALERTS = "alerts"
    USERS = "users"
    SETTINGS = "settings"
    AUDIT = "audit"


@dataclass(frozen=True, slots=True)
class Event:
    """One published event. `id` orders events across the whole bus.

    Ids are strings because the Redis bus uses stream ids ("ms-seq"); the
    memory bus uses decimal counters. Clients only hand them back as `since`.
    """

    id: str
    topic: str
    ts: float
    """Epoch seconds, UTC, as everywhere on the wire."""
    data: dict[str, Any]


@dataclass(frozen=True, slots=True)
class StreamReset:
    """The `since` id is no longer retained: the subscriber must reload state.

    Yielded instead of silently skipping events, so nothing is lost unnoticed.
    """

    since: str | None

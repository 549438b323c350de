"""`LiveFeed`: a panel's subscription to live events, delivered in batches.

A panel that shows live data owns one feed. The feed reads
`client.events(topics)` in a task and hands what arrived to the panel in
batches, throttled: the first event after a quiet spell goes out at once, then
at most one batch per `interval_ms` (a second, the pace at which the backend
publishes each series). Agents report out of phase with each other, so
without this a page would repaint several times a second; and a burst of ten
thousand events (a reconnect replaying a minute of a big cluster) becomes a
few signals, each handled with one model update and one repaint per chart.

A batch is also cut at `max_points` points so that handling it stays within a
few milliseconds; the rest follows on the next turns of the event loop. A
`StreamReset` (events were lost) is passed on as `reset`, and the panel
reloads its state from queries.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from PySide6.QtCore import QElapsedTimer, QObject, QTimer, Signal
from PySide6.QtWidgets import QWidget

from console.asyncslots import run_async
from console.client import Client
from console.client.types import ConnectionState, Event, StreamReset, Topic


class LivePoint(NamedTuple):
    """The newest point of one series, as a "metrics" event carries it.

    A named tuple: a burst makes tens of thousands of them, and a tuple is
    built several times faster than a frozen dataclass.
    """

    series_id: int
    host: str
    metric: str
    labels: dict[str, str]
    ts: float
    value: float

    @property
    def unlabelled(self) -> bool:
        """A host-wide value (cpu.percent), not one core's or one mount's."""
        return not self.labels


@dataclass(frozen=True, slots=True)
class HostChange:
    """A "hosts" event: a host appeared, went up or down, or was deleted."""

    host: str
    host_id: int
    status: str
    """"up", "down" or "deleted"."""


def points_of(events: Iterable[Event]) -> list[LivePoint]:
    """The points of "metrics" events, oldest event first (the shape `flush_events` publishes)."""
    return [_point(raw) for event in events for raw in event.data.get("points", ())]


def _point(raw: dict[str, Any]) -> LivePoint:
    # The bus delivered these through JSON (the server's schema on the wire): the
    # types are right already, so no conversions on this hot path.
    return LivePoint(
        raw["series_id"],
        raw["host"],
        raw["metric"],
        raw.get("labels") or {},
        raw["ts"],
        raw["value"],
    )


def _batch_size(events: Sequence[Event], max_points: int) -> int:
    """How many of `events` (at least one) hold no more than `max_points` points."""
    points = 0
    for count, event in enumerate(events):
        points += len(event.data.get("points", ())) or 1
        if points > max_points:
            return max(1, count)
    return len(events)


class LiveFeed(QObject):
    """Reads live events in a task; emits them in batches (see the module docstring)."""

    points_arrived = Signal(object)
    """list[LivePoint], oldest first."""
    hosts_changed = Signal(object)
    """list[HostChange], oldest first."""
    reset = Signal()
    """Events were lost (the stream restarted): reload from queries."""

    def __init__(
        self,
        client: Client,
        owner: QWidget,
        *,
        topics: Sequence[str] = (Topic.METRICS, Topic.HOSTS),
        interval_ms: int = 1000,
        max_points: int = 1_000,
    ) -> None:
        """`owner` is the widget errors are shown over; its destruction stops the feed."""
        super().__init__(owner)
        self._client = client
        self._owner = owner
        self._topics = [str(topic) for topic in topics]
        self._max_points = max_points
        self._interval_ms = interval_ms
        self._since_delivery = QElapsedTimer()
        self._pending: list[Event] = []
        self._lost = False
        self._task: asyncio.Task[None] | None = None
        self._delivered = 0
        self._flush = QTimer(self, singleShot=True)
        self._flush.timeout.connect(self.deliver)

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    @property
    def delivered(self) -> int:
        """Batches emitted so far (tests check that a burst is coalesced)."""
        return self._delivered

    def start(self) -> None:
        """Start reading, unless already reading."""
        if self.running:
            return
        self._task = run_async(
            self._read(), parent=self._owner, what="follow live updates", on_error=self._offline
        )

    async def stop(self) -> None:
        """Stop reading and drop what was not delivered yet."""
        task, self._task = self._task, None
        self._flush.stop()
        self._pending.clear()
        if task is not None:
            task.cancel()
            # Whatever it failed with was reported already (run_async).
            await asyncio.gather(task, return_exceptions=True)

    def _offline(self, _error: BaseException) -> bool:
        """A stream that ends because the client closed is no news: the top bar says offline."""
        return self._client.status.state is ConnectionState.OFFLINE

    async def _read(self) -> None:
        stream = self._client.events(self._topics)
        try:
            async for message in stream:
                if isinstance(message, StreamReset):
                    # What is pending predates the loss: the reload covers it.
                    self._pending.clear()
                    self._lost = True
                else:
                    self._pending.append(message)
                if not self._flush.isActive():
                    self._flush.start(self._delay())
        finally:
            closer = getattr(stream, "aclose", None)
            if closer is not None:
                await closer()

    def _delay(self) -> int:
        """Milliseconds until the next batch may go out: none after a quiet spell."""
        if not self._since_delivery.isValid():
            return 0
        return max(0, self._interval_ms - int(self._since_delivery.elapsed()))

    def deliver(self) -> None:
        """Emit what is pending now (the throttling timer calls this)."""
        if self._lost:
            self._lost = False
            self.reset.emit()
        size = _batch_size(self._pending, self._max_points)
        batch = self._pending[:size]
        del self._pending[:size]
        if self._pending:
            self._flush.start(0)  # the rest of a burst, on the next turns of the loop
        if not batch:
            return
        self._since_delivery.start()
        self._delivered += 1
        changes = [
            HostChange(str(e.data["host"]), int(e.data["host_id"]), str(e.data["status"]))
            for e in batch
            if e.topic == Topic.HOSTS
        ]
        if changes:
            self.hosts_changed.emit(changes)
        points = points_of(e for e in batch if e.topic == Topic.METRICS)
        if points:
            self.points_arrived.emit(points)

"""The bounded ring of recent events that both buses' subscribers read by position.

One ring per bus (per process for Redis) and a cursor per subscriber, instead
of a queue per subscriber: memory stays bounded however many subscribers there
are and however slow they read, and a subscriber that falls behind the ring is
told so (it gets a `StreamReset`, or the Redis bus reads the older part from
the stream) instead of holding events hostage.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Callable, Collection
from dataclasses import dataclass

from backend.bus.base import BusMessage
from backend.domain.events import Event, StreamReset

Order = tuple[int, ...]
"""An event id as integers: "12" is (12,), Redis' "1700000000000-3" is (1700000000000, 3)."""

OrderOf = Callable[[str], Order | None]
"""Parses an id this bus issues; None for anything else (a stale or foreign id)."""


@dataclass(slots=True)
class Cursor:
    """Where one subscriber is in the ring."""

    position: int
    """Absolute position of the next entry to read (positions never repeat)."""
    last_id: str | None
    """Id of the last event consumed, delivered or filtered out: where a resume or
    a reset report starts from."""


@dataclass(frozen=True, slots=True)
class _Slot:
    order: Order
    event: Event
    gap_before: bool
    """Events between the previous entry and this one never reached the ring
    (the Redis stream trimmed them while the reader was away)."""


class Ring:
    def __init__(self, capacity: int, base_id: str, order_of: OrderOf) -> None:
        """`base_id` is the id just before the first event this ring will hold."""
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        base = order_of(base_id)
        if base is None:
            raise ValueError(f"not an id of this bus: {base_id!r}")
        self._slots: list[_Slot | None] = [None] * capacity
        self._capacity = capacity
        self._start = 0
        self._end = 0
        self._base_id, self._base = base_id, base
        self._order_of = order_of
        self._wakeup = asyncio.Event()
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def base(self) -> Order:
        """Order of the id just before the oldest retained entry."""
        return self._base

    @property
    def newest_id(self) -> str:
        """Id of the newest entry, or the base id while the ring is empty."""
        return self._slot(self._end - 1).event.id if self._end > self._start else self._base_id

    @property
    def newest(self) -> Order:
        return self._slot(self._end - 1).order if self._end > self._start else self._base

    def order_of(self, event_id: str | None) -> Order | None:
        return None if event_id is None else self._order_of(event_id)

    def _slot(self, position: int) -> _Slot:
        slot = self._slots[position % self._capacity]
        assert slot is not None
        return slot

    def append(self, event: Event, order: Order, *, gap_before: bool = False) -> None:
        if self._end - self._start == self._capacity:
            evicted = self._slot(self._start)
            self._base_id, self._base = evicted.event.id, evicted.order
            self._start += 1
        self._slots[self._end % self._capacity] = _Slot(order, event, gap_before)
        self._end += 1
        # Swap the event before setting it: waiters already hold the old one.
        wakeup, self._wakeup = self._wakeup, asyncio.Event()
        wakeup.set()

    def at_end(self) -> Cursor:
        """A cursor that reads only what is appended from now on."""
        return Cursor(self._end, self.newest_id)

    def locate(self, event_id: str) -> int | None:
        """Position just after `event_id`, or None unless it is the base or a retained id.

        An id between two retained ones was never issued (or was lost in a
        gap), so it gets None too: resuming from it would skip silently.
        """
        key = self._order_of(event_id)
        if key is None:
            return None
        if key == self._base:
            return self._start
        low, high = self._start, self._end
        if low == high or key < self._base or key > self._slot(high - 1).order:
            return None
        while low < high:  # first position whose order is greater than key
            middle = (low + high) // 2
            if self._slot(middle).order <= key:
                low = middle + 1
            else:
                high = middle
        if low > self._start and self._slot(low - 1).order == key:
            return low
        return None

    @property
    def end(self) -> int:
        """Absolute position after the newest entry."""
        return self._end

    async def grown(self, end: int) -> None:
        """Return once the ring extends past `end` (see `end`), or is closed."""
        while self._end <= end and not self._closed:
            await self._wakeup.wait()

    async def follow(
        self, cursor: Cursor, wanted: Collection[str] | None
    ) -> AsyncGenerator[BusMessage, None]:
        """Yield events from the cursor on, waiting for new ones, advancing the cursor.

        Ends when the ring closes or when the cursor has fallen behind the
        oldest retained entry; the caller tells which (`closed`) and decides
        whether to reset or to read the missed part elsewhere.
        """
        while not self._closed:
            if cursor.position >= self._end:
                await self._wakeup.wait()
                continue
            if cursor.position < self._start:
                return
            slot = self._slot(cursor.position)
            cursor.position += 1
            if slot.gap_before:
                yield StreamReset(cursor.last_id)
            cursor.last_id = slot.event.id
            if wanted is None or slot.event.topic in wanted:
                yield slot.event

    def close(self) -> None:
        self._closed = True
        self._wakeup.set()

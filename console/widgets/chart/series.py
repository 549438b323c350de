"""One series' data as numpy arrays: the buckets of the last query, then live points.

Kept free of Qt so the rules of merging live points into a query result can be
read and tested on their own; the chart turns `Display` arrays into items.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.float64]

GAP_FACTOR = 3.0
"""A step this many times the usual one is a gap (agent down): the line breaks there
instead of drawing a straight segment across the outage."""


class BucketLike(Protocol):
    """The fields of `backend.domain.monitoring.Bucket` a chart reads."""

    @property
    def ts(self) -> float: ...
    @property
    def min(self) -> float: ...
    @property
    def max(self) -> float: ...
    @property
    def avg(self) -> float: ...


@dataclass(frozen=True, slots=True)
class Display:
    """What is drawn: x ascending; rows of NaN values mark gaps (x is their midpoint)."""

    x: Array
    lo: Array
    hi: Array
    avg: Array

    def __len__(self) -> int:
        return len(self.x)

    def visible(self, start: float, end: float) -> slice:
        """Rows with `start <= x <= end`."""
        first = int(np.searchsorted(self.x, start, side="left"))
        last = int(np.searchsorted(self.x, end, side="right"))
        return slice(first, last)


_EMPTY = np.empty(0, dtype=np.float64)


class SeriesBuffer:
    """Buckets from the last query followed by the live points newer than them."""

    def __init__(self, *, max_live: int, live_interval: float) -> None:
        self._max_live = max_live
        self._live_interval = live_interval
        self._bx, self._blo, self._bhi, self._bavg = _EMPTY, _EMPTY, _EMPTY, _EMPTY
        self._bucket_step = 0.0
        # Live points in preallocated arrays that grow by doubling, so 1 Hz appends
        # for hours cost amortised O(1) rather than a copy each.
        self._lx = np.empty(256, dtype=np.float64)
        self._ly = np.empty(256, dtype=np.float64)
        self._live = 0
        self._display: Display | None = None

    @property
    def newest(self) -> float | None:
        if self._live:
            return float(self._lx[self._live - 1])
        return float(self._bx[-1]) if len(self._bx) else None

    def set_buckets(self, buckets: Sequence[BucketLike], bucket_seconds: float = 0.0) -> None:
        """Replace the queried part; live points after the last bucket's start stay.

        A live point inside the last (still filling) bucket is kept too: dropping
        it would leave the right edge empty for up to a bucket's width (43 min
        in a 30-day view) after every query.
        """
        count = len(buckets)
        table = np.fromiter(
            (value for b in buckets for value in (b.ts, b.min, b.max, b.avg)),
            dtype=np.float64,
            count=4 * count,
        ).reshape(count, 4)
        order = np.argsort(table[:, 0], kind="stable")
        table = table[order]
        self._bx = np.ascontiguousarray(table[:, 0])
        self._blo = np.ascontiguousarray(table[:, 1])
        self._bhi = np.ascontiguousarray(table[:, 2])
        self._bavg = np.ascontiguousarray(table[:, 3])
        if count:
            steps = np.diff(self._bx)
            self._bucket_step = max(bucket_seconds, float(np.median(steps)) if len(steps) else 0.0)
        else:
            self._bucket_step = 0.0
        newest_bucket = float(self._bx[-1]) if count else -np.inf
        live = self._lx[: self._live]
        keep = live > newest_bucket
        kept = int(np.count_nonzero(keep))
        if kept != self._live:
            self._lx[:kept] = self._lx[: self._live][keep]
            self._ly[:kept] = self._ly[: self._live][keep]
            self._live = kept
        self._display = None

    def append(self, ts: float, value: float) -> bool:
        """Add a live point; False (and nothing stored) if it is not newer than the data."""
        newest = self.newest
        if newest is not None and ts <= newest:
            return False
        if self._live == len(self._lx):
            self._grow()
        self._lx[self._live] = ts
        self._ly[self._live] = value
        self._live += 1
        self._display = None
        return True

    def extend(self, points: Sequence[tuple[float, float]]) -> None:
        for ts, value in points:
            self.append(ts, value)

    def _grow(self) -> None:
        if self._live >= 2 * self._max_live:
            # Forget the oldest half rather than grow past twice the limit.
            keep = self._max_live
            self._lx[:keep] = self._lx[self._live - keep : self._live]
            self._ly[:keep] = self._ly[self._live - keep : self._live]
            self._live = keep
            return
        size = min(2 * len(self._lx), 2 * self._max_live)
        self._lx = np.resize(self._lx, size)
        self._ly = np.resize(self._ly, size)

    def display(self) -> Display:
        """The arrays to draw, cached until the data changes."""
        if self._display is None:
            self._display = self._assemble()
        return self._display

    def _assemble(self) -> Display:
        # Copies: the drawn arrays must not change when the buffer compacts in place.
        first = max(0, self._live - self._max_live)
        lx = self._lx[first : self._live].copy()
        ly = self._ly[first : self._live].copy()
        if len(self._bx) and len(lx):
            x = np.concatenate((self._bx, lx))
            lo = np.concatenate((self._blo, ly))
            hi = np.concatenate((self._bhi, ly))
            avg = np.concatenate((self._bavg, ly))
        elif len(lx):
            x, lo, hi, avg = lx, ly, ly, ly
        else:
            x, lo, hi, avg = self._bx, self._blo, self._bhi, self._bavg
        if len(x) < 2:
            return Display(x, lo, hi, avg)
        gap = GAP_FACTOR * max(self._bucket_step, self._live_interval)
        breaks = np.flatnonzero(np.diff(x) > gap) + 1
        if len(breaks):
            mid = (x[breaks - 1] + x[breaks]) / 2.0
            x = np.insert(x, breaks, mid)
            lo, hi, avg = (np.insert(a, breaks, np.nan) for a in (lo, hi, avg))
        return Display(x, lo, hi, avg)

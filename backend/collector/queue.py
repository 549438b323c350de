"""The agent's bounded on-disk FIFO of metric points, in a local SQLite file.

Why SQLite rather than an append-only file: a crash mid-write leaves a
consistent queue (a torn line would need its own recovery code), deleting the
acknowledged head is one statement, and the bound can trim the oldest rows
without rewriting the file.

Delivery is at least once. A batch is deleted only after the server
acknowledged it, so nothing that reached the queue is lost by a crash or a
restart. The known window: if the process dies after the server answered 2xx
but before `ack` committed, that one batch is sent again on the next start and
the server stores it twice. The agent acks immediately after the 2xx, so the
window is one local SQLite commit wide; closing it would need the server to
deduplicate by batch id, which a metrics point does not justify.

Durability settings: WAL with synchronous=NORMAL. A commit then reaches the
OS before `put` returns, so a crash or kill of the agent loses nothing; only
a power cut can lose the last few seconds of commits (never corrupt the
file). synchronous=FULL would add an fsync every second on every node, wear
on the SD cards and cheap flash of small edge nodes, for the sake of a few
seconds of metrics that a power cut interrupts anyway. A power cut can
likewise undo a recent `ack`, which resends that batch (the same duplicate
window as above).

Points are stored as the JSON text they are sent as, one row per `put`, so
replaying a backlog costs no decoding or re-encoding: `peek` joins rows into
one JSON array.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

Point = dict[str, Any]
"""One point as sent on the wire: host, metric, labels, ts, value."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS batches (
    -- AUTOINCREMENT: ids are never reused, even after the table empties, so
    -- an `ack` of a range peeked earlier can never delete a newer batch that
    -- happened to get a recycled id.
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    count INTEGER NOT NULL,
    points TEXT NOT NULL
)
"""


class QueueBusyError(Exception):
    """Another process (a second agent) holds the queue file."""


@dataclass(frozen=True, slots=True)
class Batch:
    """The oldest queued points, ready to send; `ack(batch.ids)` removes them."""

    ids: tuple[int, int]
    """First and last row id, inclusive."""
    count: int
    points_json: str
    """A JSON array of the points, in the order they were put."""

    @property
    def points(self) -> list[Point]:
        """Decoded points; the agent sends `points_json` as is and never needs this."""
        decoded: list[Point] = json.loads(self.points_json)
        return decoded


class DiskQueue:
    """A FIFO of point batches, bounded by a total number of points.

    Calls are synchronous and short (one small transaction each, about a
    tenth of a millisecond), so the agent runs them on its event loop; a lock
    makes them safe from several threads too. The point count is kept in
    memory, so `size()` never touches the disk.

    The file is locked exclusively while open: two agents sharing a queue
    would send every point twice, so the second one fails at start instead.
    """

    def __init__(self, path: str | Path, max_points: int) -> None:
        if max_points < 1:
            raise ValueError("max_points must be at least 1")
        self.path = Path(path)
        self.max_points = max_points
        self.dropped = 0
        """Points discarded by the bound since this queue was opened."""
        self._lock = threading.Lock()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._conn, self._size = self._open()
        except sqlite3.OperationalError as error:
            if "locked" in str(error):
                raise QueueBusyError(
                    f"the queue {self.path} is in use by another process (another agent?)"
                ) from None
            raise
        except sqlite3.DatabaseError as error:
            # A queue that cannot be read must not stop monitoring: keep the
            # damaged file for whoever wants to look at it and start afresh.
            aside = self.path.with_name(f"{self.path.name}.corrupt-{int(time.time())}")
            log.error(  # noqa: TRY400 - the reason is enough; a traceback adds nothing
                "the agent queue %s is unreadable (%s); moved it to %s and started empty",
                self.path,
                error,
                aside,
            )
            self.path.replace(aside)
            for suffix in ("-wal", "-shm"):
                Path(f"{self.path}{suffix}").unlink(missing_ok=True)
            self._conn, self._size = self._open()

    def _open(self) -> tuple[sqlite3.Connection, int]:
        """Connect, lock and read the point count: everything that fails on a bad file."""
        # isolation_level=None: transactions are explicit, so each method is
        # exactly one transaction. check_same_thread=False: the agent opens and
        # closes the queue on a worker thread and uses it on its event loop's;
        # the lock serializes access instead.
        conn = sqlite3.connect(
            self.path, isolation_level=None, check_same_thread=False, timeout=0.1
        )
        try:
            conn.execute("PRAGMA locking_mode=EXCLUSIVE")
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            # The exclusive lock is taken by the first write, so take it now.
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(_SCHEMA)
            conn.execute("COMMIT")
            (size,) = conn.execute("SELECT COALESCE(SUM(count), 0) FROM batches").fetchone()
        except BaseException:
            conn.close()
            raise
        return conn, int(size)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> DiskQueue:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def size(self) -> int:
        """Points waiting to be sent."""
        return self._size

    def put(self, points: list[Point]) -> None:
        """Append points as one batch, then trim the oldest beyond the bound.

        A single call larger than the bound keeps only its newest points.
        """
        if not points:
            return
        dropped = 0
        if len(points) > self.max_points:
            dropped = len(points) - self.max_points
            points = points[dropped:]
        encoded = json.dumps(points, separators=(",", ":"))
        with self._lock:
            conn = self._conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.execute(
                    "INSERT INTO batches (count, points) VALUES (?, ?)", (len(points), encoded)
                )
                size = self._size + len(points)
                if size > self.max_points:
                    trimmed = self._trim_oldest(size - self.max_points)
                    size -= trimmed
                    dropped += trimmed
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            self._size = size
            self.dropped += dropped
        if dropped:
            log.warning(
                "the agent queue is full (%d points): dropped the %d oldest points "
                "(%d dropped since start)",
                self.max_points,
                dropped,
                self.dropped,
            )

    def _trim_oldest(self, excess: int) -> int:
        """Delete whole oldest batches, then cut the last one short, inside the caller's
        transaction; returns how many points went."""
        trimmed = 0
        while trimmed < excess:
            row_id, count, encoded = self._conn.execute(
                "SELECT id, count, points FROM batches ORDER BY id LIMIT 1"
            ).fetchone()
            if count <= excess - trimmed:
                self._conn.execute("DELETE FROM batches WHERE id = ?", (row_id,))
                trimmed += count
                continue
            keep = json.loads(encoded)[excess - trimmed :]
            self._conn.execute(
                "UPDATE batches SET count = ?, points = ? WHERE id = ?",
                (len(keep), json.dumps(keep, separators=(",", ":")), row_id),
            )
            trimmed = excess
        return trimmed

    def peek(self, max_points: int) -> Batch | None:
        """The oldest whole batches holding at most `max_points` points, or None when empty.

        Batches are never split, so the first one is returned even when it
        alone exceeds `max_points`: the queue must always be able to move on.
        """
        with self._lock:
            if self._size == 0:
                return None
            rows = self._conn.execute("SELECT id, count, points FROM batches ORDER BY id")
            first = last = 0
            total = 0
            parts: list[str] = []
            for row_id, count, encoded in rows:
                if parts and total + count > max_points:
                    break
                if not parts:
                    first = row_id
                last = row_id
                total += count
                parts.append(encoded[1:-1])  # each row is "[...]"; join their insides
            rows.close()
        if not parts:
            return None
        return Batch(ids=(first, last), count=total, points_json=f"[{','.join(parts)}]")

    def ack(self, ids: tuple[int, int]) -> None:
        """Forget the batches of a `peek` the server accepted (or that must be dropped).

        Rows in the range already trimmed by the bound are simply gone; rows put
        after the peek have higher ids and are untouched.
        """
        first, last = ids
        with self._lock:
            conn = self._conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                (removed,) = conn.execute(
                    "SELECT COALESCE(SUM(count), 0) FROM batches WHERE id BETWEEN ? AND ?",
                    (first, last),
                ).fetchone()
                conn.execute("DELETE FROM batches WHERE id BETWEEN ? AND ?", (first, last))
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            self._size -= int(removed)

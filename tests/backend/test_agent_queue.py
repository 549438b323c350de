"""The agent's on-disk queue: order, bound, durability and the peek/ack contract."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from backend.collector.queue import DiskQueue, Point, QueueBusyError


def points(start: int, count: int) -> list[Point]:
    return [
        {"host": "h", "metric": "m", "labels": {}, "ts": float(n), "value": float(n)}
        for n in range(start, start + count)
    ]


def values(batch_points: list[Point]) -> list[int]:
    return [int(p["value"]) for p in batch_points]


def drain(queue: DiskQueue, per_peek: int = 1_000_000) -> list[int]:
    out: list[int] = []
    while (batch := queue.peek(per_peek)) is not None:
        out.extend(values(batch.points))
        queue.ack(batch.ids)
    return out


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "queue.db"


def test_fifo_across_batches(path: Path) -> None:
    with DiskQueue(path, 1000) as queue:
        assert queue.peek(10) is None
        for start in range(0, 30, 3):
            queue.put(points(start, 3))
        queue.put([])  # nothing to store: no empty batch either
        assert queue.size() == 30
        assert drain(queue, per_peek=7) == list(range(30))
        assert queue.size() == 0
        assert queue.peek(10) is None


def test_peek_takes_whole_batches_up_to_the_limit(path: Path) -> None:
    with DiskQueue(path, 1000) as queue:
        queue.put(points(0, 4))
        queue.put(points(4, 4))
        queue.put(points(8, 4))
        batch = queue.peek(9)
        assert batch is not None
        assert values(batch.points) == list(range(8))
        assert batch.count == 8
        # A single batch larger than the limit still comes out whole, or the
        # queue could never move past it.
        big = queue.peek(1)
        assert big is not None
        assert values(big.points) == [0, 1, 2, 3]


def test_peek_is_repeatable_until_acked(path: Path) -> None:
    with DiskQueue(path, 1000) as queue:
        queue.put(points(0, 5))
        first = queue.peek(100)
        again = queue.peek(100)
        assert first == again
        assert queue.size() == 5


def test_ack_ignores_batches_put_after_the_peek(path: Path) -> None:
    with DiskQueue(path, 1000) as queue:
        queue.put(points(0, 5))
        batch = queue.peek(100)
        assert batch is not None
        queue.put(points(5, 5))
        queue.ack(batch.ids)
        assert queue.size() == 5
        assert drain(queue) == list(range(5, 10))


def test_ack_twice_is_harmless(path: Path) -> None:
    with DiskQueue(path, 1000) as queue:
        queue.put(points(0, 3))
        batch = queue.peek(100)
        assert batch is not None
        queue.ack(batch.ids)
        queue.put(points(3, 3))
        queue.ack(batch.ids)
        assert drain(queue) == [3, 4, 5]


def test_ids_are_not_reused_after_the_queue_empties(path: Path) -> None:
    with DiskQueue(path, 1000) as queue:
        queue.put(points(0, 3))
        old = queue.peek(100)
        assert old is not None
        queue.ack(old.ids)
        queue.put(points(3, 3))
        new = queue.peek(100)
        assert new is not None
        assert new.ids[0] > old.ids[1]
        queue.ack(old.ids)  # a late, repeated ack of the old range
        assert queue.size() == 3


def test_bound_drops_the_oldest_points_and_counts_them(
    path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with DiskQueue(path, 10) as queue:
        queue.put(points(0, 4))
        queue.put(points(4, 4))
        queue.put(points(8, 4))  # 12 > 10: the two oldest go, cutting the first batch short
        assert queue.size() == 10
        assert queue.dropped == 2
        assert "dropped the 2 oldest points" in caplog.text
        queue.put(points(12, 5))  # the rest of the first batch (2) and all of the second (4)
        assert queue.dropped == 7
        assert drain(queue) == list(range(7, 17))


def test_a_put_larger_than_the_bound_keeps_its_newest_points(path: Path) -> None:
    with DiskQueue(path, 10) as queue:
        queue.put(points(0, 3))
        queue.put(points(3, 25))
        assert queue.size() == 10
        assert queue.dropped == 18
        assert drain(queue) == list(range(18, 28))


def test_bound_while_a_peeked_batch_is_in_flight(path: Path) -> None:
    """The bound may trim a batch being sent; its ack must still leave newer points."""
    with DiskQueue(path, 6) as queue:
        queue.put(points(0, 4))
        batch = queue.peek(100)
        assert batch is not None
        queue.put(points(4, 4))  # trims 0 and 1 from the in-flight batch
        queue.ack(batch.ids)
        assert queue.size() == 4
        assert drain(queue) == [4, 5, 6, 7]


def test_durable_across_reopen(path: Path) -> None:
    with DiskQueue(path, 100) as queue:
        queue.put(points(0, 5))
        queue.put(points(5, 5))
        batch = queue.peek(5)
        assert batch is not None
        queue.ack(batch.ids)
        queue.put(points(10, 2))
    with DiskQueue(path, 100) as reopened:
        assert reopened.size() == 7
        assert drain(reopened) == list(range(5, 12))
    with DiskQueue(path, 100) as empty:
        assert empty.size() == 0


def test_survives_a_process_that_exits_without_closing_it(path: Path) -> None:
    """A killed agent closes nothing and checkpoints nothing; its commits must stay."""
    script = (
        "import os, sys\n"
        "from backend.collector.queue import DiskQueue\n"
        "queue = DiskQueue(sys.argv[1], 100)\n"
        "queue.put([{'host': 'h', 'metric': 'm', 'labels': {}, 'ts': 0.0, 'value': 0.0}])\n"
        "queue.put([{'host': 'h', 'metric': 'm', 'labels': {}, 'ts': 1.0, 'value': 1.0}])\n"
        "os._exit(9)\n"
    )
    done = subprocess.run([sys.executable, "-c", script, str(path)], check=False, timeout=60)
    assert done.returncode == 9
    with DiskQueue(path, 100) as reopened:
        assert drain(reopened) == [0, 1]


def test_a_second_opener_is_refused(path: Path) -> None:
    with DiskQueue(path, 100), pytest.raises(QueueBusyError, match="in use"):
        DiskQueue(path, 100)
    with DiskQueue(path, 100) as again:  # free once the first one closed
        assert again.size() == 0


def test_an_unreadable_file_is_moved_aside(path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path.write_bytes(b"this is not an SQLite database, not even close" * 100)
    with DiskQueue(path, 100) as queue:
        assert queue.size() == 0
        queue.put(points(0, 1))
        assert drain(queue) == [0]
    aside = list(path.parent.glob("queue.db.corrupt-*"))
    assert len(aside) == 1
    assert "unreadable" in caplog.text
    with pytest.raises(sqlite3.DatabaseError):
        sqlite3.connect(aside[0]).execute("SELECT 1 FROM batches").close()


def test_rejects_a_zero_bound(path: Path) -> None:
    with pytest.raises(ValueError, match="max_points"):
        DiskQueue(path, 0)

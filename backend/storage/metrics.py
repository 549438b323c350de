"""All SQL for hosts, series, points and rollups.

Points and rollups bypass the ORM: ingest writes tens of thousands of rows
per call, so PostgreSQL gets one binary COPY and SQLite a few multi-row
INSERTs on the session's own driver connection, inside the caller's
transaction. Like every storage module, nothing here commits.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import struct
from bisect import bisect_left
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from itertools import chain, repeat
from typing import Any

from sqlalchemy import delete, select, text, tuple_
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from backend.domain.monitoring import RAW, ROLLUP_RESOLUTIONS, QueryPlan
from backend.storage.models import Host, MetricSeries, metric_points, metric_rollups

SeriesKey = tuple[int, str, str]
"""host id, metric name, canonical labels JSON: what makes a series unique."""

AggregateRow = tuple[int, int, float, float, float, int]
"""A query result row: series id, bucket index, min, max, sum, count."""

RollupRow = tuple[int, int, int, float, float, float, int]
"""series id, resolution, bucket start, min, max, sum, count."""

_CHUNK = 1000
"""Rows or keys per statement, under SQLite's bound-parameter limit."""


@dataclass(slots=True)
class SeriesPoints:
    """One series' share of an ingest batch, in timestamp order."""

    series_id: int
    ts: list[float]
    values: list[float]


def is_postgres(session: AsyncSession) -> bool:
    return session.get_bind().dialect.name == "postgresql"


async def _driver(session: AsyncSession) -> Any:
    """The session's psycopg or aiosqlite connection, in the session's transaction."""
    conn = await session.connection()
    raw = await conn.get_raw_connection()
    return raw.driver_connection


def _chunks(items: Sequence[Any], size: int = _CHUNK) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


# -- ingest transactions ---------------------------------------------------------


async def begin_ingest(session: AsyncSession) -> None:
    """Start an ingest transaction; on PostgreSQL, with asynchronous commit.

    `synchronous_commit = off` (SET LOCAL: this transaction only; users,
    settings and the audit log keep durable commits) lets COMMIT return
    before its WAL reaches the disk; the WAL writer flushes it within
    three `wal_writer_delay`s (0.6 s by default). The database stays
    consistent whatever happens; what a crash of the PostgreSQL server (not
    of this process, nor a clean shutdown or restart) can cost is the
    ingests acknowledged in that last fraction of a second, which then
    read as if they had never been sent. For samples taken every second
    that is a gap in a chart, the price of not waiting for an fsync on
    every batch; the points are never partly stored nor stored twice.

    BEGIN and the SET travel together (pipeline mode): one round trip.
    SQLite commits are already cheap (WAL, synchronous=NORMAL): nothing to do.
    """
    if not is_postgres(session):
        return
    driver = await _driver(session)
    async with driver.pipeline(), driver.cursor() as cursor:
        await cursor.execute("SET LOCAL synchronous_commit TO off")


# -- hosts ----------------------------------------------------------------------


async def register_hosts(session: AsyncSession, first_seen: dict[str, float]) -> dict[str, int]:
    """Ids by host name, inserting the hosts not yet known.

    A host reported concurrently by another transaction is left to it
    (ON CONFLICT DO NOTHING) and read back, so two servers never fail on
    the same new host.
    """
    insert = pg_insert if is_postgres(session) else sqlite_insert
    names = sorted(first_seen)
    for chunk in _chunks(names):
        rows = [{"name": n, "first_seen": first_seen[n], "last_seen": first_seen[n]} for n in chunk]
        await session.execute(
            insert(Host).values(rows).on_conflict_do_nothing(index_elements=["name"])
        )
    ids: dict[str, int] = {}
    for chunk in _chunks(names):
        result = await session.execute(select(Host.name, Host.id).where(Host.name.in_(chunk)))
        ids.update((name, host_id) for name, host_id in result)
    return ids


_PG_TOUCH = (
    "UPDATE hosts SET last_seen = GREATEST(hosts.last_seen, v.ts) "
    "FROM unnest(%s::int4[], %s::text[], %s::float8[]) AS v(id, name, ts) "
    "WHERE hosts.id = v.id AND hosts.name = v.name RETURNING hosts.id"
)


def _pg_touch_params(
    last_seen: dict[tuple[int, str], float],
) -> tuple[list[int], list[str], list[float]]:
    keys = sorted(last_seen)
    return [i for i, _ in keys], [n for _, n in keys], [last_seen[k] for k in keys]


async def touch_hosts(session: AsyncSession, last_seen: dict[tuple[int, str], float]) -> set[int]:
    """Move each (id, name) host's last_seen forward; returns the ids that matched.

    A missing id means the host was deleted since its id was cached, so the
    caller registers it again. The name is compared too because SQLite may
    give a deleted row's id to the next new host. On PostgreSQL the row
    lock taken here also orders an ingest against a concurrent `delete_host`.
    """
    driver = await _driver(session)
    if is_postgres(session):
        async with driver.cursor() as cursor:
            await cursor.execute(_PG_TOUCH, _pg_touch_params(last_seen))
            return {row[0] for row in await cursor.fetchall()}
    found: set[int] = set()
    for chunk in _chunks(sorted(last_seen)):
        values = ", ".join(["(?, ?, ?)"] * len(chunk))
        rows = await driver.execute_fetchall(
            "UPDATE hosts SET last_seen = max(hosts.last_seen, v.column3) "
            f"FROM (VALUES {values}) AS v "
            "WHERE hosts.id = v.column1 AND hosts.name = v.column2 RETURNING hosts.id",
            list(chain.from_iterable((i, n, last_seen[i, n]) for i, n in chunk)),
        )
        found.update(row[0] for row in rows)
    return found


async def all_hosts(session: AsyncSession) -> list[Host]:
    return list((await session.execute(select(Host).order_by(Host.name))).scalars())


async def delete_host(session: AsyncSession, host_id: int) -> Host | None:
    """Remove a host with its series, points and rollups; None when there is none.

    The host row is locked first, so an ingest for it either finished before
    (and its points are found here) or waits and then registers the host anew.
    """
    host = (
        await session.execute(select(Host).where(Host.id == host_id).with_for_update())
    ).scalar_one_or_none()
    if host is None:
        return None
    series_ids = list(
        (await session.execute(select(MetricSeries.id).where(MetricSeries.host_id == host_id)))
        .scalars()
        .all()
    )
    for chunk in _chunks(series_ids):
        await session.execute(delete(metric_points).where(metric_points.c.series_id.in_(chunk)))
        await session.execute(delete(metric_rollups).where(metric_rollups.c.series_id.in_(chunk)))
    await session.execute(delete(MetricSeries).where(MetricSeries.host_id == host_id))
    await session.delete(host)
    await session.flush()
    return host


# -- series ---------------------------------------------------------------------


async def register_series(
    session: AsyncSession, keys: Collection[SeriesKey]
) -> dict[SeriesKey, int]:
    """Ids by (host id, metric, labels), inserting the series not yet known."""
    insert = pg_insert if is_postgres(session) else sqlite_insert
    ordered = sorted(keys)
    for chunk in _chunks(ordered):
        rows = [{"host_id": h, "metric": m, "labels": labels} for h, m, labels in chunk]
        await session.execute(insert(MetricSeries).values(rows).on_conflict_do_nothing())
    ids: dict[SeriesKey, int] = {}
    columns = (MetricSeries.host_id, MetricSeries.metric, MetricSeries.labels)
    for chunk in _chunks(ordered):
        result = await session.execute(
            select(*columns, MetricSeries.id).where(tuple_(*columns).in_(chunk))
        )
        ids.update(((h, m, labels), sid) for h, m, labels, sid in result)
    return ids


async def find_series(
    session: AsyncSession,
    *,
    host: str | None = None,
    metric: str | None = None,
) -> list[tuple[int, str, str, str]]:
    """(id, host name, metric, labels JSON) of the matching series, by host then metric."""
    query = select(MetricSeries.id, Host.name, MetricSeries.metric, MetricSeries.labels).join(
        Host, Host.id == MetricSeries.host_id
    )
    if host is not None:
        query = query.where(Host.name == host)
    if metric is not None:
        query = query.where(MetricSeries.metric == metric)
    query = query.order_by(Host.name, MetricSeries.metric, MetricSeries.labels, MetricSeries.id)
    return [(sid, host, name, labels) for sid, host, name, labels in await session.execute(query)]


async def all_series_ids(session: AsyncSession) -> list[int]:
    return list((await session.execute(select(MetricSeries.id))).scalars())


# -- points and rollups ---------------------------------------------------------

_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + bytes(8)
_COPY_TRAILER = b"\xff\xff"
_COPY_SQL = "COPY metric_points (series_id, ts, value) FROM STDIN (FORMAT BINARY)"
_COPY_ROW = struct.Struct(">hiiidid")
"""PostgreSQL binary COPY row: 3 fields, then (length, int4 series_id),
(length, float8 ts), (length, float8 value), all big-endian."""

_SQLITE_ROWS = 300
"""Points per SQLite INSERT: measured faster than one row per executemany step."""


def _sqlite_insert_sql(rows: int) -> str:
    values = ", ".join(["(?, ?, ?)"] * rows)
    return f"INSERT INTO metric_points (series_id, ts, value) VALUES {values}"


_SQLITE_INSERT = _sqlite_insert_sql(_SQLITE_ROWS)


def _copy_rows(batches: Iterable[SeriesPoints]) -> bytes:
    """Binary COPY rows, packed by C loops (map over a struct)."""
    pack = _COPY_ROW.pack
    three, four, eight = repeat(3), repeat(4), repeat(8)
    return b"".join(
        chain.from_iterable(
            map(pack, three, four, repeat(b.series_id), eight, b.ts, eight, b.values)
            for b in batches
        )
    )


class PointWriter:
    """Appends points to the session's transaction piece by piece, without waiting.

    Each `write` hands its points to the database and returns at once, so
    the caller prepares the next piece (or the rollups) while the database
    stores this one: PostgreSQL parses one binary COPY stream as it
    arrives; SQLite steps multi-row INSERTs on aiosqlite's thread, outside
    the GIL. Leaving the `async with` block waits until everything is
    stored (an error leaves the transaction to be rolled back). The lists
    handed to `write` may change afterwards: they are copied at once.
    """

    def __init__(self, session: AsyncSession) -> None:
        self._session = session
        self._driver: Any = None
        self._stack = contextlib.AsyncExitStack()
        self._copy: Any = None
        self._flat: list[float] = []
        """SQLite: values of rows not yet sent (less than one full INSERT)."""
        self._inserts: list[asyncio.Future[Any]] = []

    async def __aenter__(self) -> PointWriter:
        self._driver = await _driver(self._session)
        return self

    async def write(self, batches: Sequence[SeriesPoints]) -> None:
        if not batches:
            return
        if is_postgres(self._session):
            if self._copy is None:
                cursor = await self._stack.enter_async_context(self._driver.cursor())
                self._copy = await self._stack.enter_async_context(cursor.copy(_COPY_SQL))
                await self._copy.write(_COPY_HEADER)
            await self._copy.write(_copy_rows(batches))
            return
        self._flat.extend(
            chain.from_iterable(
                chain.from_iterable(
                    zip(repeat(b.series_id), b.ts, b.values, strict=False) for b in batches
                )
            )
        )
        step = _SQLITE_ROWS * 3
        flat = self._flat
        full = len(flat) - len(flat) % step
        if full:
            statements = [flat[i : i + step] for i in range(0, full, step)]
            self._flat = flat[full:]
            self._inserts.append(asyncio.ensure_future(self._sqlite_many(statements)))
            await asyncio.sleep(0)  # let the task queue its work on aiosqlite's thread now

    async def _sqlite_many(self, statements: list[list[float]]) -> None:
        async with self._driver.executemany(_SQLITE_INSERT, statements):
            pass

    async def __aexit__(self, kind: type[BaseException] | None, *rest: Any) -> None:
        try:
            if kind is None and self._flat:
                # execute_fetchall closes its cursor in the same trip to aiosqlite's thread.
                sql = _sqlite_insert_sql(len(self._flat) // 3)
                self._inserts.append(
                    asyncio.ensure_future(self._driver.execute_fetchall(sql, self._flat))
                )
            if kind is None and self._copy is not None:
                await self._copy.write(_COPY_TRAILER)
        finally:
            try:
                # Every queued INSERT finishes (or fails) before anything else runs here.
                results = await asyncio.gather(*self._inserts, return_exceptions=True)
            finally:
                await self._stack.__aexit__(kind, *rest)
            if kind is None:
                for result in results:
                    if isinstance(result, BaseException):
                        raise result


async def write_batch(session: AsyncSession, batches: Sequence[SeriesPoints]) -> None:
    """Append a batch's points and fold its aggregates into the rollups.

    The rollups are computed while the database takes the points, so on a
    multi-core machine that Python work is free.
    """
    async with PointWriter(session) as writer:
        await writer.write(batches)
        rollups = prepare_rollups(session, rollup_rows(batches))
    await upsert_rollups(session, rollups)


async def insert_points(session: AsyncSession, batches: Sequence[SeriesPoints]) -> None:
    """Append points only (no rollups): for loading data whose rollups are rebuilt apart."""
    async with PointWriter(session) as writer:
        await writer.write(batches)


def rollup_rows(batches: Iterable[SeriesPoints]) -> list[RollupRow]:
    """Per (series, resolution, bucket) aggregates of a batch, sorted by that key.

    The finest level is computed from the points: they are in timestamp
    order, so each bucket is one slice and min/max/sum run in C over it.
    Coarser levels merge finer buckets, which nest exactly. Sorted rows
    make concurrent upserts lock rows in one order, so they cannot deadlock.
    """
    first, *coarser = ROLLUP_RESOLUTIONS
    rows: list[RollupRow] = []
    for batch in batches:
        ts, values = batch.ts, batch.values
        fine: list[tuple[int, float, float, float, int]] = []
        i, n = 0, len(ts)
        while i < n:
            slot = ts[i] // first  # exact floor, unlike floor(ts / first)
            j = bisect_left(ts, (slot + 1) * first, i)
            chunk = values[i:j]
            fine.append((int(slot) * first, min(chunk), max(chunk), sum(chunk), j - i))
            i = j
        sid = batch.series_id
        rows.extend((sid, first, b, lo, hi, total, count) for b, lo, hi, total, count in fine)
        for resolution in coarser:
            merged: dict[int, list[Any]] = {}
            for b, lo, hi, total, count in fine:
                key = b - b % resolution
                agg = merged.get(key)
                if agg is None:
                    merged[key] = [lo, hi, total, count]
                else:
                    agg[0] = min(agg[0], lo)
                    agg[1] = max(agg[1], hi)
                    agg[2] += total
                    agg[3] += count
            rows.extend((sid, resolution, key, *agg) for key, agg in merged.items())
    rows.sort()
    return rows


@dataclass(frozen=True, slots=True)
class PreparedRollups:
    """Rollup rows in the form the session's database takes them (`prepare_rollups`)."""

    rows: Sequence[RollupRow]
    pg_params: list[str] | None


def prepare_rollups(session: AsyncSession, rows: Sequence[RollupRow]) -> PreparedRollups:
    """The rows ready to send; on PostgreSQL, as one array literal per column.

    Array literals are several times faster to send than Python lists, which
    psycopg adapts element by element. repr() of a float round-trips exactly,
    and PostgreSQL parses it back exactly. Done apart from sending, so it can
    run while the database is busy with the points.
    """
    if not rows or not is_postgres(session):
        return PreparedRollups(rows, None)
    literals = ["{" + ",".join(map(repr, column)) + "}" for column in zip(*rows, strict=True)]
    return PreparedRollups(rows, literals)


_PG_ROLLUP_UPSERT = (
    "INSERT INTO metric_rollups (series_id, resolution, bucket, min, max, sum, count) "
    "SELECT * FROM unnest(%s::int4[], %s::int4[], %s::int8[], %s::float8[], %s::float8[], "
    "%s::float8[], %s::int8[]) "
    "ON CONFLICT (series_id, resolution, bucket) DO UPDATE SET "
    "min = LEAST(metric_rollups.min, EXCLUDED.min), "
    "max = GREATEST(metric_rollups.max, EXCLUDED.max), "
    "sum = metric_rollups.sum + EXCLUDED.sum, "
    "count = metric_rollups.count + EXCLUDED.count"
)
_SQLITE_ROLLUP_UPSERT = (
    "INSERT INTO metric_rollups (series_id, resolution, bucket, min, max, sum, count) "
    "VALUES (?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (series_id, resolution, bucket) DO UPDATE SET "
    "min = min(metric_rollups.min, excluded.min), "
    "max = max(metric_rollups.max, excluded.max), "
    "sum = metric_rollups.sum + excluded.sum, "
    "count = metric_rollups.count + excluded.count"
)


async def upsert_rollups(
    session: AsyncSession, rollups: PreparedRollups | Sequence[RollupRow]
) -> None:
    """Fold aggregates into the stored buckets, all resolutions in one statement.

    PostgreSQL: one INSERT ... SELECT FROM unnest(arrays), one round trip
    whatever the row count. SQLite: one prepared upsert stepped per row
    (executemany), which costs no round trips in-process.
    """
    if not isinstance(rollups, PreparedRollups):
        rollups = prepare_rollups(session, rollups)
    if not rollups.rows:
        return
    driver = await _driver(session)
    if rollups.pg_params is not None:
        async with driver.cursor() as cursor:
            await cursor.execute(_PG_ROLLUP_UPSERT, rollups.pg_params)
        return
    async with driver.executemany(_SQLITE_ROLLUP_UPSERT, rollups.rows):
        pass


async def finish_ingest(
    session: AsyncSession, last_seen: dict[tuple[int, str], float], rollups: PreparedRollups
) -> set[int]:
    """`touch_hosts` then `upsert_rollups`; on PostgreSQL both in one round trip.

    Returns the host ids that matched, as `touch_hosts` does: the caller
    rolls back when one is missing. Host rows are locked before rollup rows,
    the same order as every other ingest and as `delete_host`, so
    concurrent writers cannot deadlock on them.
    """
    if not is_postgres(session):
        found = await touch_hosts(session, last_seen)
        await upsert_rollups(session, rollups)
        return found
    driver = await _driver(session)
    async with driver.cursor() as touch, driver.cursor() as upsert:
        async with driver.pipeline():
            await touch.execute(_PG_TOUCH, _pg_touch_params(last_seen))
            if rollups.pg_params is not None:
                await upsert.execute(_PG_ROLLUP_UPSERT, rollups.pg_params)
        return {row[0] for row in await touch.fetchall()}


# -- range queries --------------------------------------------------------------

_EXISTING = {
    "postgresql": (
        "SELECT id, CAST(-1 AS bigint), CAST(0 AS float8), CAST(0 AS float8), "
        "CAST(0 AS float8), CAST(0 AS bigint) FROM metric_series WHERE id = ANY(%(ids)s::int4[])"
    ),
    "sqlite": "SELECT id, -1, 0.0, 0.0, 0.0, 0 FROM metric_series WHERE id IN ({ids})",
}
_RAW = {
    "postgresql": (
        "SELECT series_id, LEAST(CAST(floor((ts - %(t0)s) / %(width)s) AS bigint), %(last)s), "
        "min(value), max(value), sum(value), count(*) FROM metric_points "
        "WHERE series_id = ANY(%(ids)s::int4[]) AND ts >= %(t0)s AND ts < %(t1)s"
    ),
    # (ts - t0) >= 0 here, so SQLite's truncating CAST is the floor PostgreSQL spells out.
    "sqlite": (
        "SELECT series_id, min(CAST((ts - :t0) / :width AS INTEGER), :last), "
        "min(value), max(value), sum(value), count(*) FROM metric_points "
        "WHERE series_id IN ({ids}) AND ts >= :t0 AND ts < :t1"
    ),
}
_ROLLUP = {
    "postgresql": (
        "SELECT series_id, (bucket - %(t0)s) / %(width)s, min(min), max(max), sum(sum), "
        "CAST(sum(count) AS bigint) FROM metric_rollups "
        "WHERE series_id = ANY(%(ids)s::int4[]) AND resolution = %(resolution)s "
        "AND bucket >= %(t0)s AND bucket < %(t1)s"
    ),
    "sqlite": (
        "SELECT series_id, (bucket - :t0) / :width, min(min), max(max), sum(sum), sum(count) "
        "FROM metric_rollups WHERE series_id IN ({ids}) AND resolution = :resolution "
        "AND bucket >= :t0 AND bucket < :t1"
    ),
}
"""Rollup bounds and widths are integers, so bucket indexes are exact integer divisions."""


async def aggregate(
    session: AsyncSession, series_ids: Sequence[int], plan: QueryPlan
) -> tuple[set[int], list[AggregateRow]]:
    """Which of the series exist, and their data sliced as `plan` says, in one round trip.

    Existence rows (index -1) are UNIONed with the aggregates, so a chart
    refresh costs a single statement. Grouping happens in SQL, so the rows
    read are one index range scan per series and at most `max_points`
    rows per series come back. For raw points the index is clamped to the
    last slice: for a ts just below t1, (ts - t0) / width can round up to
    `max_points` itself.
    """
    postgres = is_postgres(session)
    dialect = "postgresql" if postgres else "sqlite"
    body = _RAW[dialect] if plan.resolution == RAW else _ROLLUP[dialect]
    sql = f"{_EXISTING[dialect]} UNION ALL {body} GROUP BY 1, 2 ORDER BY 1, 2"
    params: dict[str, Any] = {"t0": plan.t0, "t1": plan.t1, "width": plan.bucket_seconds}
    if plan.resolution == RAW:
        params["last"] = plan.max_points - 1
    else:
        params.update(
            t0=int(plan.t0),
            t1=int(plan.t1),
            width=int(plan.bucket_seconds),
            resolution=plan.resolution,
        )
    driver = await _driver(session)
    if postgres:
        async with driver.cursor() as cursor:
            await cursor.execute(sql, {**params, "ids": list(series_ids)})
            rows = await cursor.fetchall()
    else:
        named = {f"id{n}": sid for n, sid in enumerate(series_ids)}
        sql = sql.replace("{ids}", ", ".join(f":{name}" for name in named))
        rows = await driver.execute_fetchall(sql, {**params, **named})
    existing = {row[0] for row in rows if row[1] == -1}
    return existing, [tuple(row) for row in rows if row[1] != -1]


# -- retention ------------------------------------------------------------------


async def try_job_lock(session: AsyncSession, key: int) -> bool:
    """Take a transaction-scoped advisory lock if free (PostgreSQL; SQLite: always).

    Several server instances run the same jobs; the one that gets the lock
    does the work and the others skip this round.
    """
    if not is_postgres(session):
        return True
    result = await session.execute(text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": key})
    return bool(result.scalar_one())


async def delete_points_before(
    session: AsyncSession, series_ids: Sequence[int], cutoff: float
) -> int:
    """Delete raw points with ts < cutoff.

    Filtering on series ids lets both databases walk the (series_id, ts)
    index instead of scanning the whole table.
    """
    deleted = 0
    for chunk in _chunks(series_ids):
        result = await session.execute(
            delete(metric_points).where(
                metric_points.c.series_id.in_(chunk), metric_points.c.ts < cutoff
            )
        )
        deleted += _rowcount(result)
    return deleted


async def delete_rollups_before(
    session: AsyncSession, series_ids: Sequence[int], resolution: int, cutoff: float
) -> int:
    """Delete the buckets of one resolution that end at or before the cutoff."""
    deleted = 0
    for chunk in _chunks(series_ids):
        result = await session.execute(
            delete(metric_rollups).where(
                metric_rollups.c.series_id.in_(chunk),
                metric_rollups.c.resolution == resolution,
                metric_rollups.c.bucket <= math.floor(cutoff - resolution),
            )
        )
        deleted += _rowcount(result)
    return deleted


def _rowcount(result: Any) -> int:
    return int(result.rowcount or 0)

"""Metric ingest, series listing, range queries, retention and coalesced live updates."""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from operator import attrgetter, itemgetter
from typing import Any, cast

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from backend.domain.errors import InvalidInput, NotFound
from backend.domain.events import Topic
from backend.domain.monitoring import (
    MAX_BATCH,
    MAX_POINTS,
    MAX_QUERY_SERIES,
    MAX_TS,
    RAW,
    CheckedPoints,
    IngestResult,
    PointFields,
    PointIn,
    Retention,
    SeriesData,
    SeriesView,
    canonical_labels,
    check_points,
    plan_query,
)
from backend.domain.permissions import Permission
from backend.domain.principal import Principal
from backend.services.context import ServiceContext, retry_transient, unit_of_work
from backend.services.hosts import HostsService
from backend.services.settings import SettingsService
from backend.storage import metrics as store

GroupKey = tuple[str, str, tuple[tuple[str, str], ...]]
"""host, metric and label pairs in the order the sender gave them: cheap to
build per point; label orders that differ map to the same cached series."""

MAX_CACHED_SERIES = 200_000
"""Cache entries kept before starting over, so label churn cannot grow memory forever."""

RETENTION_TTL = 5.0
"""Seconds a query may plan with retention settings read earlier."""

RETENTION_LOCK = 0x51D_0E7E
"""PostgreSQL advisory lock id: one server instance at a time applies retention."""

log = logging.getLogger(__name__)

_FIELDS = itemgetter("host", "metric", "labels", "ts", "value")
_SERIES_ID = attrgetter("series_id")


@dataclass(frozen=True, slots=True)
class _Series:
    id: int
    host_id: int
    host: str
    metric: str
    labels: dict[str, str]


_Columns = tuple[list[float], list[float]]
"""Timestamps and values of one group key's points, in the order they came."""

_Stored = tuple[
    dict[str, int],
    dict[GroupKey, "_Series"],
    dict[GroupKey, "_Series"],
    list["store.SeriesPoints"],
    dict[int, float],
]
"""What one ingest transaction produced: host ids, series (all and new), batches,
and each host's newest timestamp by host id."""

PIECE = 2500
"""Points grouped and handed to the database at a time: the database stores one
piece while the next is grouped."""

STALE_ATTEMPTS = 3
"""Transactions one ingest may start over because cached host ids went stale."""


class _StaleHosts(Exception):
    """Cached hosts were deleted meanwhile: roll back, forget them, start over."""

    def __init__(self, host_ids: set[int]) -> None:
        super().__init__(f"hosts {sorted(host_ids)} were deleted")
        self.host_ids = host_ids


EVENT_INTERVAL = 1.0
"""At most one live update per series per this many seconds."""


@dataclass(frozen=True, slots=True)
class _Latest:
    series: _Series
    ts: float
    value: float


class MetricsService:
    """Ingest is the hot path: agents push every second, so it avoids the ORM
    and, once a series is known, any lookup query (ids are cached here).
    """

    def __init__(self, ctx: ServiceContext, settings: SettingsService, hosts: HostsService) -> None:
        self._ctx = ctx
        self._settings = settings
        self._hosts = hosts
        self._series: dict[GroupKey, _Series] = {}
        self._host_ids: dict[str, int] = {}
        self._latest: dict[int, _Latest] = {}
        self._published_at: dict[int, float] = {}
        self.publish_on_ingest = False
        """Publish due series right after ingest (set by a core with live events)."""
        self._retention_cache: tuple[float, Retention] | None = None
        hosts.on_delete(self._forget_host)

    # -- ingest ----------------------------------------------------------------

    async def ingest(
        self, principal: Principal, points: Sequence[PointIn | Mapping[str, Any]]
    ) -> IngestResult:
        """Store a batch with its rollups and the hosts' last_seen, in one transaction.

        Deliberately not audited: agents push every second, and an entry per
        batch would flood the audit log (and serialize every ingest on its
        hash chain). The API key's last-used time records who pushes.
        """
        principal.require(Permission.METRICS_WRITE)
        checked = _validated(points)
        if not checked:
            return IngestResult(accepted=0, series=0)

        async def store_batch() -> _Stored:
            async with unit_of_work(self._ctx) as uow:
                return await self._store(uow.session, checked)

        for attempt in range(1, STALE_ATTEMPTS + 1):
            try:
                host_ids, resolved, fresh, batches, seen = await retry_transient(store_batch)
                break
            except _StaleHosts as stale:
                # Deleted since cached (perhaps by another server): register them again.
                for host_id in stale.host_ids:
                    self._forget_host(host_id)
                if attempt == STALE_ATTEMPTS:
                    raise RuntimeError("hosts kept being deleted during one ingest") from None
        # Only committed ids enter the caches: a rolled-back series row must not be reused.
        self._remember(host_ids, fresh)
        self._hosts.note_seen(seen)
        self._note_latest(batches, resolved)
        if self.publish_on_ingest:
            # The points are committed: failing the call now (503 while Redis is
            # down) would make the agent send them again, stored twice. A lost
            # live update only delays a chart: the next flush sends newer points.
            try:
                await self.flush_events()
            except Exception as error:  # noqa: BLE001 - whatever the bus raised
                log.warning("live metric update not published: %s: %s", type(error).__name__, error)
        return IngestResult(accepted=len(checked), series=len(batches))

    async def _store(self, session: AsyncSession, points: list[PointFields]) -> _Stored:
        """One ingest transaction: points, hosts' last_seen, new hosts and series, rollups.

        The points of series whose ids are cached go to the database piece by
        piece as they are grouped (`PointWriter`), so grouping the rest and
        computing the rollups overlap with the database storing them. Only
        then are the hosts touched, which proves the cached ids still stand
        (or raises `_StaleHosts`, rolling everything back): in the steady
        state that and the rollup upsert are one round trip (`finish_ingest`).
        Points of new series wait until their hosts and series are registered.
        """
        await store.begin_ingest(session)
        columns: dict[GroupKey, _Columns] = {}
        resolved: dict[GroupKey, _Series] = {}
        host_ids: dict[str, int] = {}
        """The cached ids the points written so far rely on (proved by the touch)."""
        prepared: tuple[list[store.SeriesPoints], store.PreparedRollups] | None = None
        async with store.PointWriter(session) as writer:
            for start in range(0, len(points), PIECE):
                ready = []
                for key, (ts, values) in _group(points[start : start + PIECE]).items():
                    known = columns.get(key)
                    if known is None:
                        columns[key] = (ts, values)
                    else:
                        known[0].extend(ts)
                        known[1].extend(values)
                    series = resolved.get(key) or self._cached(key)
                    if series and host_ids.setdefault(key[0], series.host_id) == series.host_id:
                        resolved[key] = series
                        ready.append(store.SeriesPoints(series.id, ts, values))
                ready.sort(key=_SERIES_ID)
                await writer.write(ready)
            if len(resolved) == len(columns):
                # Every series is cached: prepare the rest while the points are stored.
                batches = _by_series(columns, resolved)
                prepared = batches, store.prepare_rollups(session, store.rollup_rows(batches))
        first, last = _host_span(columns)
        if prepared is not None:
            batches, rollups = prepared
            touched = {(host_ids[name], name): ts for name, ts in last.items()}
            if missing := set(host_ids.values()) - await store.finish_ingest(
                session, touched, rollups
            ):
                raise _StaleHosts(missing)
            return host_ids, resolved, {}, batches, _seen_by_id(host_ids, last)
        host_ids = await self._touch_hosts(session, first, last, host_ids)
        fresh = await self._register_series(
            session, [key for key in columns if key not in resolved], host_ids
        )
        resolved.update(fresh)
        async with store.PointWriter(session) as writer:
            await writer.write(
                sorted(
                    (store.SeriesPoints(fresh[key].id, *columns[key]) for key in fresh),
                    key=_SERIES_ID,
                )
            )
            batches = _by_series(columns, resolved)
            rollups = store.prepare_rollups(session, store.rollup_rows(batches))
        await store.upsert_rollups(session, rollups)
        return host_ids, resolved, fresh, batches, _seen_by_id(host_ids, last)

    def _cached(self, key: GroupKey) -> _Series | None:
        series = self._series.get(key)
        if series is None or self._host_ids.get(key[0]) != series.host_id:
            return None
        return series

    async def _touch_hosts(
        self,
        session: AsyncSession,
        first: dict[str, float],
        last: dict[str, float],
        known: dict[str, int],
    ) -> dict[str, int]:
        """Ids of the batch's hosts, registering new ones and moving last_seen forward.

        `known` are ids already relied upon; the others come from the cache or
        are registered. Raises `_StaleHosts` when an id no longer matches a host row.
        """
        cached = {name: self._host_ids[name] for name in first if name in self._host_ids}
        ids = {**cached, **known}
        unknown = {name: first[name] for name in first if name not in ids}
        if unknown:
            ids.update(await store.register_hosts(session, unknown))
        found = await store.touch_hosts(
            session, {(host_id, name): last[name] for name, host_id in ids.items()}
        )
        if missing := set(ids.values()) - found:
            raise _StaleHosts(missing)
        return ids

    async def _register_series(
        self, session: AsyncSession, keys: list[GroupKey], host_ids: dict[str, int]
    ) -> dict[GroupKey, _Series]:
        """The series of group keys that were not cached, inserting those not yet known."""
        wanted = {key: (host_ids[key[0]], key[1], canonical_labels(dict(key[2]))) for key in keys}
        ids = await store.register_series(session, set(wanted.values()))
        return {
            key: _Series(ids[series_key], series_key[0], key[0], key[1], dict(key[2]))
            for key, series_key in wanted.items()
        }

    def _remember(self, host_ids: dict[str, int], fresh: dict[GroupKey, _Series]) -> None:
        if len(self._series) + len(fresh) > MAX_CACHED_SERIES:
            self._series.clear()
            self._host_ids.clear()
        self._host_ids.update(host_ids)
        self._series.update(fresh)

    def _forget_host(self, host_id: int) -> None:
        """Drop cached ids of a deleted host (called by HostsService.delete)."""
        for name in [name for name, cached in self._host_ids.items() if cached == host_id]:
            del self._host_ids[name]
        for key in [key for key, series in self._series.items() if series.host_id == host_id]:
            del self._series[key]
        for sid in [
            sid for sid, latest in self._latest.items() if latest.series.host_id == host_id
        ]:
            del self._latest[sid]
            self._published_at.pop(sid, None)

    # -- live updates ----------------------------------------------------------

    def _note_latest(
        self, batches: Sequence[store.SeriesPoints], resolved: dict[GroupKey, _Series]
    ) -> None:
        by_id = {series.id: series for series in resolved.values()}
        for batch in batches:
            ts, value = batch.ts[-1], batch.values[-1]
            pending = self._latest.get(batch.series_id)
            if pending is None or ts >= pending.ts:
                self._latest[batch.series_id] = _Latest(by_id[batch.series_id], ts, value)

    async def flush_events(self) -> str | None:
        """Publish one "metrics" event with the newest point of each due series.

        A series is due when its last update went out at least a second ago,
        so a chart gets at most one update per series per second however
        often agents push. Called right after each ingest (leading edge: a
        point that is due goes out at once) and by a job once a second (the
        trailing edge: what was held back). Returns the event id, or None
        when nothing was due.
        """
        if not self._latest:
            return None
        now = time.monotonic()
        due = [
            sid
            for sid in self._latest
            if now - self._published_at.get(sid, -math.inf) >= EVENT_INTERVAL
        ]
        if not due:
            return None
        pending = {sid: self._latest.pop(sid) for sid in due}
        for sid in due:
            self._published_at[sid] = now
        points = [
            {
                "series_id": sid,
                "host": latest.series.host,
                "metric": latest.series.metric,
                "labels": latest.series.labels,
                "ts": latest.ts,
                "value": latest.value,
            }
            for sid, latest in sorted(pending.items())
        ]
        return await self._ctx.bus.publish(Topic.METRICS, {"points": points})

    # -- reading ---------------------------------------------------------------

    async def series(
        self, principal: Principal, *, host: str | None = None, metric: str | None = None
    ) -> list[SeriesView]:
        principal.require(Permission.METRICS_READ)
        async with self._ctx.db.reader() as session:
            rows = await store.find_series(session, host=host, metric=metric)
        return [
            SeriesView(id=sid, host=host_name, metric=name, labels=json.loads(labels))
            for sid, host_name, name, labels in rows
        ]

    async def query(
        self,
        principal: Principal,
        series_ids: Sequence[int],
        start: float,
        end: float,
        max_points: int,
    ) -> list[SeriesData]:
        """Per series, at most `max_points` buckets of min/max/avg/count over [start, end).

        The plan (`plan_query`) picks the coarsest stored resolution that
        resolves the range, so the rows read track `max_points`, not the
        range; the SQL groups them, one index range scan per series.
        """
        principal.require(Permission.METRICS_READ)
        ids = _check_query(series_ids, start, end, max_points)
        plan = plan_query(
            float(start),
            float(end),
            max_points,
            now=self._ctx.clock(),
            retention=await self._retention(),
        )
        async with self._ctx.db.reader() as session:
            existing, rows = await store.aggregate(session, ids, plan)
        unknown = [sid for sid in ids if sid not in existing]
        if unknown:
            raise NotFound(
                f"there is no series {', '.join(map(str, unknown))}",
                details={"series_ids": unknown},
            )
        buckets: dict[int, list[dict[str, float]]] = {sid: [] for sid in ids}
        t0, width = plan.t0, plan.bucket_seconds
        for sid, index, low, high, total, count in rows:
            buckets[sid].append(
                {
                    "ts": t0 + index * width,
                    "min": low,
                    "max": high,
                    "avg": total / count,
                    "count": count,
                }
            )
        # Validating plain dicts in one call keeps the per-bucket loop in pydantic's core.
        return [
            SeriesData.model_validate(
                {
                    "series_id": sid,
                    "resolution": plan.resolution,
                    "bucket_seconds": width,
                    "buckets": buckets[sid],
                }
            )
            for sid in ids
        ]

    # -- retention -------------------------------------------------------------

    async def apply_retention(self) -> dict[str, int]:
        """Drop what each resolution's retention setting no longer keeps; run by a job.

        Returns rows deleted per level ("raw", "1m", "10m", "1h"), or {}
        when another server instance holds the job lock this round.
        """
        cutoffs = (await self._retention(fresh=True)).cutoffs(self._ctx.clock())
        async with unit_of_work(self._ctx) as uow:
            session = uow.session
            if not await store.try_job_lock(session, RETENTION_LOCK):
                return {}
            ids = await store.all_series_ids(session)
            deleted = {"raw": await store.delete_points_before(session, ids, cutoffs[RAW])}
            for resolution, name in ((60, "1m"), (600, "10m"), (3600, "1h")):
                deleted[name] = await store.delete_rollups_before(
                    session, ids, resolution, cutoffs[resolution]
                )
        return deleted

    async def _retention(self, *, fresh: bool = False) -> Retention:
        """The retention settings; queries accept a copy up to RETENTION_TTL seconds old.

        A chart refreshes every second, and reading four settings is a
        database round trip that would cost more than the query itself.
        """
        now = time.monotonic()
        if not fresh and self._retention_cache and now - self._retention_cache[0] < RETENTION_TTL:
            return self._retention_cache[1]
        values = await self._settings.values(
            "retention.raw_hours", "retention.1m_days", "retention.10m_days", "retention.1h_days"
        )
        retention = Retention(
            raw_hours=values["retention.raw_hours"],
            days_1m=values["retention.1m_days"],
            days_10m=values["retention.10m_days"],
            days_1h=values["retention.1h_days"],
        )
        self._retention_cache = (now, retention)
        return retention


def _validated(points: Sequence[PointIn | Mapping[str, Any]]) -> list[PointFields]:
    """The batch as plain field dicts; mappings (the API body, scripts) are validated here.

    A `PointIn` was validated when it was built, so its fields are taken as
    they are. Mappings go through `check_points`, which accepts and refuses
    exactly what `PointIn` does without building a model per point.
    """
    if len(points) > MAX_BATCH:
        raise InvalidInput(
            f"at most {MAX_BATCH} points per call, got {len(points)}",
            details={"field": "points", "limit": MAX_BATCH},
        )
    if isinstance(points, CheckedPoints):
        return points
    kinds = set(map(type, points))
    # PointIn (and subclasses such as the API's body type) were validated when built.
    if all(issubclass(kind, PointIn) for kind in kinds):
        return cast("list[PointFields]", list(map(vars, points)))
    if any(issubclass(kind, PointIn) for kind in kinds):
        points = [vars(p) if isinstance(p, PointIn) else p for p in points]
    try:
        return check_points(points)
    except ValidationError as error:
        problems = [{"loc": list(e["loc"]), "problem": e["msg"]} for e in error.errors()[:20]]
        raise InvalidInput(
            f"invalid points: {problems[0]['loc']}: {problems[0]['problem']}",
            details={"field": "points", "problems": problems},
        ) from None


def _group(points: list[PointFields]) -> dict[GroupKey, _Columns]:
    """Split points by series key: the only Python loop that visits every point.

    Fields come out of each dict through one C-level itemgetter and go
    straight into per-key columns; this loop is most of ingest's Python time.
    """
    by_key: dict[GroupKey, _Columns] = {}
    get = by_key.get
    for host, metric, labels, ts, value in map(_FIELDS, points):
        key = (host, metric, tuple(labels.items()) if labels else ())
        columns = get(key)
        if columns is None:
            by_key[key] = ([ts], [value])
        else:
            columns[0].append(ts)
            columns[1].append(value)
    return by_key


def _host_span(columns: dict[GroupKey, _Columns]) -> tuple[dict[str, float], dict[str, float]]:
    """Per host, the earliest and the latest timestamp of the batch."""
    first: dict[str, float] = {}
    last: dict[str, float] = {}
    for (host, _, _), (ts, _) in columns.items():
        low, high = min(ts), max(ts)
        first[host] = min(first.get(host, low), low)
        last[host] = max(last.get(host, high), high)
    return first, last


def _seen_by_id(host_ids: dict[str, int], last: dict[str, float]) -> dict[int, float]:
    return {host_ids[name]: ts for name, ts in last.items()}


def _sorted_by_time(ts: list[float], values: list[float]) -> _Columns:
    order = sorted(range(len(ts)), key=ts.__getitem__)
    return [ts[i] for i in order], [values[i] for i in order]


def _by_series(
    columns: dict[GroupKey, _Columns], resolved: dict[GroupKey, _Series]
) -> list[store.SeriesPoints]:
    """One batch per series id in timestamp order, sorted by id, merging group
    keys that differ only in label order."""
    merged: dict[int, _Columns] = {}
    for key, (ts, values) in columns.items():
        sid = resolved[key].id
        known = merged.get(sid)
        merged[sid] = (ts, values) if known is None else (known[0] + ts, known[1] + values)
    batches = []
    for sid in sorted(merged):
        ts, values = merged[sid]
        if ts != sorted(ts):
            ts, values = _sorted_by_time(ts, values)
        batches.append(store.SeriesPoints(sid, ts, values))
    return batches


def _check_query(series_ids: Sequence[int], start: float, end: float, max_points: int) -> list[int]:
    """The distinct ids in request order, or InvalidInput naming the bad argument."""

    def bad(field: str, message: str) -> InvalidInput:
        return InvalidInput(message, details={"field": field})

    if isinstance(max_points, bool) or not isinstance(max_points, int):
        raise bad("max_points", "max_points must be an integer")
    if not 1 <= max_points <= MAX_POINTS:
        raise bad("max_points", f"max_points must be between 1 and {MAX_POINTS}")
    for name, value in (("start", start), ("end", end)):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise bad(name, f"{name} must be a number of epoch seconds")
        if not 0 <= value <= MAX_TS:
            raise bad(name, f"{name} must be between 0 and {MAX_TS:.0f} epoch seconds")
    if start >= end:
        raise bad("start", "start must be before end")
    if any(isinstance(sid, bool) or not isinstance(sid, int) for sid in series_ids):
        raise bad("series", "series ids are integers")
    ids = list(dict.fromkeys(series_ids))
    if not ids:
        raise bad("series", "name at least one series")
    if len(ids) > MAX_QUERY_SERIES:
        raise bad("series", f"at most {MAX_QUERY_SERIES} series per query")
    return ids

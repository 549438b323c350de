"""Metric ingest, listing, range queries, retention and live events, on both back ends.

Range queries are checked against a brute-force reading of the raw points
written independently from the spec: hypothesis explores SQLite (a fresh
core per example), fixed seeds cover PostgreSQL too.

Time is controlled by building the services on a copy of the core's context
whose clock the test owns (`dataclasses.replace(core.ctx, clock=clock)`):
the services read time only through `ctx.clock`, and they share the core's
database and bus, so nothing is patched.
"""

from __future__ import annotations

import asyncio
import math
import random
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import aclosing
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ConfigDict, TypeAdapter, ValidationError
from sqlalchemy import func, select

from backend.config import Settings
from backend.core import Core
from backend.domain.errors import Forbidden, InvalidInput, NotFound
from backend.domain.events import Event
from backend.domain.monitoring import (
    MAX_BATCH,
    PointIn,
    SeriesData,
    canonical_labels,
    check_points,
)
from backend.domain.principal import Principal
from backend.services.hosts import HostsService
from backend.services.metrics import PIECE, MetricsService
from backend.storage import metrics as store
from backend.storage.models import metric_points, metric_rollups
from tests.backend.conftest import TEST_SECRET, Team

BASE = 1_700_000_000.0
"""Data starts here; the clock sits after it, well inside raw retention."""
DATA_SPAN = 2 * 86_400
NOW = BASE + DATA_SPAN + 3600
RAW_HOURS, DAYS_1M, DAYS_10M, DAYS_1H = 168, 30, 180, 730
"""The retention settings' defaults, which these tests leave alone."""


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def services_at(core: Core, clock: Clock) -> tuple[MetricsService, HostsService]:
    ctx = replace(core.ctx, clock=clock)
    hosts = HostsService(ctx, core.settings)
    return MetricsService(ctx, core.settings, hosts), hosts


def point(host: str, metric: str, ts: float, value: float, **labels: str) -> PointIn:
    return PointIn(host=host, metric=metric, labels=labels, ts=ts, value=value)


async def row_count(core: Core, table: Any) -> int:
    async with core.db.reader() as session:
        return int((await session.execute(select(func.count()).select_from(table))).scalar_one())


# -- ingest and listing ---------------------------------------------------------


@pytest.mark.asyncio
async def test_ingest_registers_hosts_and_series_and_moves_last_seen(
    core: Core, team: Team
) -> None:
    batch = [
        point("web-1", "cpu.percent", BASE + 1, 10.0),
        point("web-1", "cpu.percent", BASE + 2, 20.0),
        point("web-1", "cpu.core.percent", BASE + 2, 5.0, core="0"),
        point("web-1", "cpu.core.percent", BASE + 2, 6.0, core="1"),
        point("db-1", "mem.used_percent", BASE + 5, 50.0),
    ]
    result = await core.metrics.ingest(team.operator, batch)
    assert (result.accepted, result.series) == (5, 4)

    listed = await core.metrics.series(team.viewer)
    assert [(s.host, s.metric, s.labels) for s in listed] == [
        ("db-1", "mem.used_percent", {}),
        ("web-1", "cpu.core.percent", {"core": "0"}),
        ("web-1", "cpu.core.percent", {"core": "1"}),
        ("web-1", "cpu.percent", {}),
    ]
    assert [s.metric for s in await core.metrics.series(team.viewer, host="web-1")] == [
        "cpu.core.percent",
        "cpu.core.percent",
        "cpu.percent",
    ]
    only_cpu = await core.metrics.series(team.viewer, metric="cpu.percent")
    assert [(s.host, s.id) for s in only_cpu] == [("web-1", listed[3].id)]

    hosts = {h.name: h for h in await core.hosts.list(team.viewer)}
    assert (hosts["web-1"].first_seen, hosts["web-1"].last_seen) == (BASE + 1, BASE + 2)
    assert (hosts["db-1"].first_seen, hosts["db-1"].last_seen) == (BASE + 5, BASE + 5)

    # Later points move last_seen; older ones (a replayed buffer) never move it back.
    await core.metrics.ingest(team.operator, [point("web-1", "cpu.percent", BASE + 9, 1.0)])
    await core.metrics.ingest(team.operator, [point("web-1", "cpu.percent", BASE - 9, 1.0)])
    hosts = {h.name: h for h in await core.hosts.list(team.viewer)}
    assert (hosts["web-1"].first_seen, hosts["web-1"].last_seen) == (BASE + 1, BASE + 9)

    # Labels in another order are the same series; the series stay four.
    reordered = {"labels": {"core": "0"}, "host": "web-1", "metric": "cpu.core.percent"}
    await core.metrics.ingest(team.operator, [{**reordered, "ts": BASE + 3, "value": 7.0}])
    assert len(await core.metrics.series(team.viewer)) == 4
    assert await row_count(core, metric_points) == 8


@pytest.mark.asyncio
async def test_an_empty_batch_is_accepted_and_writes_nothing(core: Core, team: Team) -> None:
    assert (await core.metrics.ingest(team.operator, [])).accepted == 0
    assert await core.metrics.series(team.viewer) == []


def _bad_batches() -> Iterator[tuple[str, list[Any]]]:
    good = {"host": "web-1", "metric": "cpu.percent", "ts": BASE, "value": 1.0}
    yield "empty host", [good, {**good, "host": ""}]
    yield "blank host", [{**good, "host": "   "}]
    yield "NaN value", [good, {**good, "value": math.nan}]
    yield "infinite ts", [{**good, "ts": math.inf}]
    yield "negative ts", [{**good, "ts": -1.0}]
    yield "huge value", [{**good, "value": 1e300}]
    yield "unknown metric", [{**good, "metric": "no.such.metric"}]
    yield "long host", [{**good, "host": "h" * 256}]
    yield "too many labels", [{**good, "labels": {f"k{i}": "v" for i in range(17)}}]
    yield "missing value", [{"host": "web-1", "metric": "cpu.percent", "ts": BASE}]
    yield "too many points", [PointIn(**good)] * (MAX_BATCH + 1)


@pytest.mark.asyncio
async def test_bad_input_is_refused_and_writes_nothing(core: Core, team: Team) -> None:
    for name, batch in _bad_batches():
        with pytest.raises(InvalidInput):
            await core.metrics.ingest(team.operator, batch)
        assert await core.metrics.series(team.viewer) == [], name
    assert await core.hosts.list(team.viewer) == []
    assert await row_count(core, metric_points) == 0

    await core.metrics.ingest(team.operator, [point("web-1", "cpu.percent", BASE, 1.0)])
    (series,) = await core.metrics.series(team.viewer)
    query = core.metrics.query
    with pytest.raises(NotFound) as missing:
        await query(team.viewer, [series.id, series.id + 1000], BASE, BASE + 60, 10)
    assert missing.value.details == {"series_ids": [series.id + 1000]}
    for args in [
        ([series.id], BASE, BASE, 10),  # start == end
        ([series.id], BASE + 1, BASE, 10),  # start > end
        ([series.id], BASE, BASE + 60, 0),  # max_points 0
        ([series.id], BASE, BASE + 60, 10_001),
        ([series.id], math.nan, BASE + 60, 10),
        ([series.id], BASE, math.inf, 10),
        ([], BASE, BASE + 60, 10),
        (list(range(1, 66)), BASE, BASE + 60, 10),
    ]:
        with pytest.raises(InvalidInput):
            await query(team.viewer, *args)
    assert await row_count(core, metric_points) == 1


class ClosedPoint(PointIn):
    """Like the API's body type: unknown fields are refused."""

    model_config = ConfigDict(frozen=True, extra="forbid")


def _mostly(valid: st.SearchStrategy[Any], invalid: st.SearchStrategy[Any]) -> Any:
    return st.integers(0, 9).flatmap(lambda n: valid if n else invalid)


_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "host": _mostly(
        st.sampled_from(["web-1", "db-2", " x ", "h" * 255, b"web-1"]),
        st.sampled_from(["", "   ", "h" * 256, 7, None]),
    ),
    "metric": _mostly(
        st.sampled_from(["cpu.percent", "load.1", "cpu.core.percent"]),
        st.sampled_from(["no.such.metric", "", 1.5, None]),
    ),
    "labels": _mostly(
        st.sampled_from([{}, {"core": "0"}, {"b": "2", "a": "1"}, {"k" * 64: "v" * 200}]),
        st.sampled_from(
            [
                {"": "x"},
                {"k" * 65: "v"},
                {"k": "v" * 201},
                {f"k{i}": "v" for i in range(17)},
                {f"k{i}": "v" * 40 for i in range(12)},  # over 500 characters as JSON
                {"k": 1},
                "nope",
                None,
            ]
        ),
    ),
    "ts": _mostly(
        st.one_of(st.sampled_from([BASE, 0, 1e10 - 1, "17"]), st.floats(0, 1e10, exclude_max=True)),
        st.one_of(st.sampled_from([-1.0, 1e10, math.inf, math.nan, "x", None]), st.floats()),
    ),
    "value": _mostly(
        st.one_of(st.sampled_from([1.0, 1e18, -1e18, "2.5", True]), st.floats(-1e18, 1e18)),
        st.one_of(st.sampled_from([1e19, math.nan, "x", None]), st.floats()),
    ),
}


@st.composite
def raw_points(draw: st.DrawFn) -> Any:
    if draw(st.integers(0, 40)) == 0:
        return draw(st.sampled_from([5, "point", None, [], PointIn(**GOOD)]))
    raw = {name: draw(values) for name, values in _FIELDS.items() if draw(st.integers(0, 15))}
    if draw(st.integers(0, 15)) == 0:
        raw["extra"] = 1
    return raw


GOOD = {"host": "web-1", "metric": "cpu.percent", "ts": BASE, "value": 1.0}


@settings(max_examples=400, deadline=None)
@given(batch=st.lists(raw_points(), max_size=6), model=st.sampled_from([PointIn, ClosedPoint]))
def test_check_points_accepts_and_refuses_exactly_what_the_model_does(
    batch: list[Any], model: type[PointIn]
) -> None:
    strict: TypeAdapter[list[PointIn]] = TypeAdapter(list[model])  # type: ignore[valid-type]
    try:
        expected = [vars(p) for p in strict.validate_python(batch)]
    except ValidationError as error:
        refused = error.errors(include_input=False, include_context=False)
    else:
        assert check_points(batch, model) == expected
        return
    with pytest.raises(ValidationError) as caught:
        check_points(batch, model)
    assert caught.value.errors(include_input=False, include_context=False) == refused


@pytest.mark.asyncio
async def test_large_batches_store_exactly_their_points(core: Core) -> None:
    """Batches of several pieces mixing cached and new series (new hosts first
    appearing in later pieces), label orders, repeated and unordered timestamps."""
    system = Principal.system()
    rng = random.Random(5)
    first = [point("old", "load.1", BASE, 1.0), point("old", "load.5", BASE, 2.0, b="2", a="1")]
    await core.metrics.ingest(system, first)
    batch = list(first)
    for n in range(3 * PIECE + 17):
        host = rng.choice(["old", "old", f"new-{n // PIECE}", "late" if n > PIECE else "old"])
        labels = rng.choice([{}, {"a": "1", "b": "2"}, {"b": "2", "a": "1"}])
        metric = "load.5" if labels else rng.choice(["load.1", "cpu.percent"])
        ts = BASE + rng.choice([rng.uniform(0, 7200), 60.0 * rng.randrange(120)])
        batch.append(point(host, metric, ts, rng.uniform(-100, 100), **labels))
    for ingested in (batch[2 : 2 + PIECE + 5], batch[2 + PIECE + 5 :]):
        result = await core.metrics.ingest(system, ingested)
        assert result.accepted == len(ingested)

    expected: dict[tuple[str, str, str], list[tuple[float, float]]] = {}
    for p in batch:
        key = (p.host, p.metric, canonical_labels(p.labels))
        expected.setdefault(key, []).append((p.ts, p.value))
    listed = await core.metrics.series(system)
    keys = {s.id: (s.host, s.metric, canonical_labels(s.labels)) for s in listed}
    assert sorted(keys.values()) == sorted(expected)
    async with core.db.reader() as session:
        points = (await session.execute(select(metric_points))).all()
        rollups = (await session.execute(select(metric_rollups))).all()
    stored: dict[tuple[str, str, str], list[tuple[float, float]]] = {}
    for sid, ts, value in points:
        stored.setdefault(keys[sid], []).append((ts, value))
    assert {k: sorted(v) for k, v in stored.items()} == {k: sorted(v) for k, v in expected.items()}

    wanted: dict[tuple[int, int, int], list[float]] = {}
    sids = {key: sid for sid, key in keys.items()}
    for key, samples in expected.items():
        for ts, value in samples:
            for resolution in (60, 600, 3600):
                bucket = int(ts // resolution) * resolution
                wanted.setdefault((sids[key], resolution, bucket), []).append(value)
    assert sorted((r.series_id, r.resolution, r.bucket) for r in rollups) == sorted(wanted)
    for r in rollups:
        values = wanted[r.series_id, r.resolution, r.bucket]
        assert (r.min, r.max, r.count) == (min(values), max(values), len(values))
        assert r.sum == pytest.approx(sum(values), rel=1e-9, abs=1e-9)


@pytest.mark.asyncio
async def test_concurrent_ingests_of_the_same_series_all_count(core: Core) -> None:
    """Concurrent batches lock hosts, then rollups, in one order: none is lost."""
    system = Principal.system()
    hosts = [f"web-{n}" for n in range(6)]

    def batch(offset: int) -> list[PointIn]:
        pairs = [(h, m) for h in hosts for m in ("load.1", "load.5")]
        return [point(h, m, BASE + offset + s, 1.0) for h, m in pairs for s in range(30)]

    await core.metrics.ingest(system, batch(0))  # every series cached from here on
    await asyncio.gather(*(core.metrics.ingest(system, batch(30 * n)) for n in range(1, 7)))
    assert await row_count(core, metric_points) == 7 * len(batch(0))
    async with core.db.reader() as session:
        counts = select(metric_rollups.c.resolution, func.sum(metric_rollups.c.count)).group_by(
            metric_rollups.c.resolution
        )
        assert dict((await session.execute(counts)).all()) == dict.fromkeys(
            (60, 600, 3600), 7 * len(batch(0))
        )
    hosts_seen = {h.name: h.last_seen for h in await core.hosts.list(system)}
    assert hosts_seen == dict.fromkeys(hosts, BASE + 6 * 30 + 29)


# -- permissions ----------------------------------------------------------------


@pytest.mark.asyncio
async def test_permission_matrix(core: Core, team: Team) -> None:
    """Readers read; operators and above ingest; only admins delete hosts."""
    await core.metrics.ingest(team.system, [point("target", "cpu.percent", BASE, 1.0)])
    (series,) = await core.metrics.series(team.system)
    throwaway = iter(range(100))

    async def delete_host(who: Principal) -> None:
        name = f"doomed-{next(throwaway)}"
        await core.metrics.ingest(team.system, [point(name, "cpu.percent", BASE, 1.0)])
        (host,) = [h for h in await core.hosts.list(team.system) if h.name == name]
        await core.hosts.delete(who, host.id)

    operations = {
        "ingest": lambda who: core.metrics.ingest(
            who, [point(f"by-{who.name}", "load.1", BASE, 1)]
        ),
        "series": core.metrics.series,
        "query": lambda who: core.metrics.query(who, [series.id], BASE, BASE + 60, 10),
        "hosts.list": core.hosts.list,
        "hosts.delete": delete_host,
    }
    allowed = {
        "admin": set(operations),
        "system": set(operations),
        "operator": {"ingest", "series", "query", "hosts.list"},
        "viewer": {"series", "query", "hosts.list"},
    }
    principals = {
        "admin": team.admin,
        "operator": team.operator,
        "viewer": team.viewer,
        "system": team.system,
    }
    for role, who in principals.items():
        for name, operation in operations.items():
            if name in allowed[role]:
                await operation(who)
            else:
                with pytest.raises(Forbidden):
                    await operation(who)
    # Refused writes left nothing behind; allowed deletions removed their hosts.
    names = {h.name for h in await core.hosts.list(team.system)}
    assert names == {"target", "by-ada", "by-otto", "by-system", "doomed-1", "doomed-2"}


# -- range queries against brute force ------------------------------------------

RESOLUTIONS = (3600, 600, 60)


@dataclass
class Scenario:
    series: list[list[tuple[float, float]]]
    """Per series, (ts, value) points."""
    batches: int
    queries: list[tuple[float, float, int]] = field(default_factory=list)
    expect: list[int | None] = field(default_factory=list)
    """Per query the resolution it was built to hit, or None."""

    def add(self, start: float, end: float, max_points: int, expect: int | None) -> None:
        self.queries.append((start, end, max_points))
        self.expect.append(expect)

    def add_between_points(self, i: int, j: int) -> None:
        """A raw query from exactly one stored ts to exactly another: both range ends meet data."""
        stamps = sorted({ts for ts, _ in self.series[0]})
        start, end = stamps[i % len(stamps)], stamps[j % len(stamps)]
        if start < end:
            self.add(start, end, max(1, math.ceil((end - start) / 20)), 0)


def expected_resolution(start: float, end: float, max_points: int, now: float) -> int:
    width = (end - start) / max_points
    resolution = next((r for r in RESOLUTIONS if r <= width), 0)
    levels = [
        (0, now - RAW_HOURS * 3600),
        (60, now - DAYS_1M * 86_400),
        (600, now - DAYS_10M * 86_400),
    ]
    for (level, cutoff), coarser in zip(levels, (60, 600, 3600), strict=True):
        if resolution == level and start < cutoff:
            resolution = coarser
    return resolution


def brute_force(
    points: list[tuple[float, float]], start: float, end: float, max_points: int, resolution: int
) -> tuple[float, list[tuple[float, float, float, float, int]]]:
    """(bucket_seconds, [(ts, min, max, avg, count)]) computed from the spec, per point."""
    slots: dict[int, list[float]] = {}
    if resolution == 0:
        width = (end - start) / max_points
        for ts, value in points:
            if start <= ts < end:
                index = min(math.floor((ts - start) / width), max_points - 1)
                slots.setdefault(index, []).append(value)
        t0 = start
    else:
        t0 = math.floor(start / resolution) * resolution
        t1 = math.ceil(end / resolution) * resolution
        width = math.ceil((t1 - t0) / max_points / resolution) * resolution
        for ts, value in points:
            bucket = int(ts // resolution) * resolution
            if t0 <= bucket < t1:
                slots.setdefault((bucket - t0) // width, []).append(value)
    return float(width), [
        (t0 + index * width, min(vs), max(vs), sum(vs) / len(vs), len(vs))
        for index, vs in sorted(slots.items())
    ]


def assert_matches(
    data: SeriesData, points: list[tuple[float, float]], query: tuple[float, float, int]
) -> None:
    width, expected = brute_force(points, *query, data.resolution)
    assert data.bucket_seconds == width
    assert len(data.buckets) <= query[2]
    got = [(b.ts, b.min, b.max, b.avg, b.count) for b in data.buckets]
    assert [(g[0], g[1], g[2], g[4]) for g in got] == [(e[0], e[1], e[2], e[4]) for e in expected]
    for g, e in zip(got, expected, strict=True):
        assert g[3] == pytest.approx(e[3], rel=1e-9, abs=1e-9)


async def check_scenario(metrics: MetricsService, scenario: Scenario) -> None:
    system = Principal.system("test")
    pending = [
        point(f"host-{n}", "cpu.percent", ts, value)
        for n, points in enumerate(scenario.series)
        for ts, value in points
    ]
    random.Random(len(pending)).shuffle(pending)
    size = max(1, math.ceil(len(pending) / scenario.batches))
    for first in range(0, len(pending), size):
        await metrics.ingest(system, pending[first : first + size])
    listed = await metrics.series(system)
    ids = [next(s.id for s in listed if s.host == f"host-{n}") for n in range(len(listed))]
    for query, expect in zip(scenario.queries, scenario.expect, strict=True):
        results = await metrics.query(system, ids, *query)
        resolution = expected_resolution(*query, NOW)
        if expect is not None:
            assert resolution == expect, "the scenario builder missed its target"
        assert [data.series_id for data in results] == ids
        for points, data in zip(scenario.series, results, strict=True):
            assert data.resolution == resolution
            assert_matches(data, points, query)


QUERY_KINDS = ("raw", "60", "600", "3600", "exact", "below")


def build_query(
    kind: str, level: int, max_points: int, start: float, jitter: float
) -> tuple[float, float, int, int | None]:
    """A query whose bucket width lands in `kind`'s band, or exactly on / just under a level."""
    if kind == "exact":
        start = float(math.floor(start))
        return start, start + level * max_points, max_points, level
    if kind == "below":
        start = float(math.floor(start))
        finer = {60: 0, 600: 60, 3600: 600}[level]
        return start, start + level * max_points - 0.5, max_points, finer
    low, high = {"raw": (0.01, 59.9), "60": (60, 599), "600": (600, 3599), "3600": (3600, 9000)}[
        kind
    ]
    width = low + (high - low) * jitter
    return start, start + width * max_points, max_points, None


def _points(draw_ts: Any, draw_value: Any, count: int) -> list[tuple[float, float]]:
    return [(draw_ts(), draw_value()) for _ in range(count)]


def random_scenario(rng: random.Random) -> Scenario:
    def ts() -> float:
        kind = rng.random()
        if kind < 0.3:  # on a minute boundary
            return BASE + 60 * rng.randrange(DATA_SPAN // 60)
        if kind < 0.6:  # a dense hour
            return BASE + 40_000 + rng.uniform(0, 3600)
        return BASE + rng.uniform(0, DATA_SPAN)

    series = [
        _points(ts, lambda: rng.uniform(-1000, 1000), rng.randrange(1, 300))
        for _ in range(rng.randrange(1, 3))
    ]
    scenario = Scenario(series=series, batches=rng.randrange(1, 4))
    for kind in QUERY_KINDS:
        for level in (60, 600, 3600):
            max_points = rng.randrange(1, 40)
            start = BASE + rng.uniform(-3600, DATA_SPAN / 2)
            scenario.add(*build_query(kind, level, max_points, start, rng.random()))
    for _ in range(3):
        scenario.add_between_points(rng.randrange(300), rng.randrange(300))
    return scenario


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    moments = st.one_of(
        st.integers(0, DATA_SPAN // 60).map(lambda k: BASE + 60.0 * k),
        st.floats(BASE + 40_000, BASE + 43_600),
        st.floats(BASE, BASE + DATA_SPAN, exclude_max=True),
    )
    values = st.floats(-1e6, 1e6, allow_nan=False)
    series = draw(
        st.lists(
            st.lists(st.tuples(moments, values), min_size=1, max_size=120), min_size=1, max_size=2
        )
    )
    scenario = Scenario(series=series, batches=draw(st.integers(1, 3)))
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(QUERY_KINDS))
        level = draw(st.sampled_from((60, 600, 3600)))
        max_points = draw(st.integers(1, 60))
        start = draw(
            st.one_of(
                st.floats(BASE - 3600, BASE + DATA_SPAN), st.sampled_from([BASE, BASE + 40_000])
            )
        )
        scenario.add(*build_query(kind, level, max_points, start, draw(st.floats(0, 1))))
    scenario.add_between_points(draw(st.integers(0, 200)), draw(st.integers(0, 200)))
    return scenario


async def _check_on_fresh_sqlite(template: Path, scenario: Scenario) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copy(template, Path(tmp) / "quarterdeck.db")
        config = Settings(
            data_dir=Path(tmp),
            secret_key=TEST_SECRET,
            auto_migrate=False,
            run_jobs=False,
            collect_local=False,
        )
        async with Core.open(config) as core:
            metrics, _ = services_at(core, Clock(NOW))
            await check_scenario(metrics, scenario)


@settings(max_examples=25, deadline=None)
@given(scenario=scenarios())
def test_query_matches_brute_force_on_sqlite(sqlite_template: Path, scenario: Scenario) -> None:
    """A fresh core per example, so examples cannot see each other's data."""
    asyncio.run(_check_on_fresh_sqlite(sqlite_template, scenario))


@pytest.mark.asyncio
@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_query_matches_brute_force(core: Core, seed: int) -> None:
    metrics, _ = services_at(core, Clock(NOW))
    await check_scenario(metrics, random_scenario(random.Random(seed)))


@pytest.mark.asyncio
async def test_old_ranges_read_the_rollups_that_still_cover_them(core: Core) -> None:
    """Raw points past retention are not consulted even for a narrow range."""
    clock = Clock(NOW)
    metrics, _ = services_at(core, clock)
    system = Principal.system()
    points = [(BASE + 30.0 * k + 0.25, float(k % 7)) for k in range(200)]
    await metrics.ingest(system, [point("old", "load.1", ts, v) for ts, v in points])
    (series,) = await metrics.series(system)
    query = (BASE + 600.0, BASE + 1200.0, 100)  # 6 s wide buckets: raw while fresh

    (fresh,) = await metrics.query(system, [series.id], *query)
    assert fresh.resolution == 0
    assert_matches(fresh, points, query)
    for age_days, resolution in [(8, 60), (31, 600), (181, 3600), (800, 3600)]:
        clock.now = BASE + age_days * 86_400
        (old,) = await metrics.query(system, [series.id], *query)
        assert old.resolution == resolution
        assert_matches(old, points, query)


# -- retention ------------------------------------------------------------------


@pytest.mark.asyncio
async def test_retention_deletes_exactly_what_is_older_than_the_cutoffs(core: Core) -> None:
    clock = Clock(NOW)
    metrics, _ = services_at(core, clock)
    cutoffs = {
        "raw": NOW - RAW_HOURS * 3600,
        60: NOW - DAYS_1M * 86_400,
        600: NOW - DAYS_10M * 86_400,
        3600: NOW - DAYS_1H * 86_400,
    }
    moments = {NOW - 10.0}
    for cutoff in cutoffs.values():
        for delta in (-3601.0, -600.5, -60.0, -0.001, 0.0, 0.001, 59.5, 3600.0):
            moments.add(cutoff + delta)
    await metrics.ingest(
        Principal.system(),
        [point(h, "load.5", ts, 1.0) for ts in sorted(moments) for h in ("a", "b")],
    )

    async def rows() -> tuple[list[Any], list[Any]]:
        async with core.db.reader() as session:
            points = (await session.execute(select(metric_points))).all()
            rollups = (await session.execute(select(metric_rollups))).all()
        return sorted(points), sorted(rollups)

    points_before, rollups_before = await rows()
    deleted = await metrics.apply_retention()
    points_after, rollups_after = await rows()

    kept_points = [p for p in points_before if p.ts >= cutoffs["raw"]]
    kept_rollups = [r for r in rollups_before if r.bucket + r.resolution > cutoffs[r.resolution]]
    assert points_after == kept_points
    assert rollups_after == kept_rollups
    gone = {
        level: sum(
            1 for r in rollups_before if r.resolution == resolution and r not in kept_rollups
        )
        for level, resolution in (("1m", 60), ("10m", 600), ("1h", 3600))
    }
    assert deleted == {"raw": len(points_before) - len(kept_points), **gone}
    assert all(deleted.values())
    # Nothing is older any more: a second pass deletes nothing.
    assert set((await metrics.apply_retention()).values()) == {0}


# -- live events ----------------------------------------------------------------


@pytest.mark.asyncio
async def test_flush_publishes_the_newest_point_per_series_once(core: Core, team: Team) -> None:
    bus = core.ctx.bus
    assert await core.metrics.flush_events() is None
    marker = await bus.publish("test", {})
    async with aclosing(bus.subscribe(["metrics"], since=marker)) as subscription:  # type: ignore[type-var]
        await core.metrics.ingest(
            team.operator,
            [
                point("web-1", "cpu.percent", BASE + 2, 2.0),
                point("web-1", "cpu.percent", BASE + 1, 1.0),
                point("web-1", "cpu.core.percent", BASE + 1, 5.0, core="3"),
            ],
        )
        # A later batch supersedes; an older replayed point does not.
        await core.metrics.ingest(team.operator, [point("web-1", "cpu.percent", BASE + 3, 3.0)])
        await core.metrics.ingest(team.operator, [point("web-1", "cpu.percent", BASE, 0.0)])
        event_id = await core.metrics.flush_events()
        assert event_id is not None
        async with asyncio.timeout(5):
            event = await anext(subscription)
        assert isinstance(event, Event)
        assert event.id == event_id
        ids = {
            (s.metric, tuple(s.labels.items())): s.id
            for s in await core.metrics.series(team.viewer)
        }
        assert event.data == {
            "points": sorted(
                [
                    {
                        "series_id": ids[("cpu.percent", ())],
                        "host": "web-1",
                        "metric": "cpu.percent",
                        "labels": {},
                        "ts": BASE + 3,
                        "value": 3.0,
                    },
                    {
                        "series_id": ids[("cpu.core.percent", (("core", "3"),))],
                        "host": "web-1",
                        "metric": "cpu.core.percent",
                        "labels": {"core": "3"},
                        "ts": BASE + 1,
                        "value": 5.0,
                    },
                ],
                key=lambda p: p["series_id"],
            )
        }
        # Nothing new since: no event.
        last = await bus.last_id()
        assert await core.metrics.flush_events() is None
        assert await bus.last_id() == last


@pytest.mark.asyncio
async def test_a_failed_ingest_leaves_nothing_behind(
    core: Core, team: Team, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Points written on the driver connection roll back with the rest, and the
    ids of rolled-back hosts and series never enter the ingest caches."""

    def broken(batches: object) -> list[Any]:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(store, "rollup_rows", broken)
    batch = [point("web-1", "cpu.percent", BASE + s, float(s)) for s in range(5)]
    with pytest.raises(RuntimeError, match="disk on fire"):
        await core.metrics.ingest(team.operator, batch)
    assert await row_count(core, metric_points) == 0
    assert await core.metrics.series(team.viewer) == []
    assert await core.hosts.list(team.viewer) == []

    monkeypatch.undo()
    await core.metrics.ingest(team.operator, batch)
    (series,) = await core.metrics.series(team.viewer)
    async with core.db.reader() as session:
        stored = (await session.execute(select(metric_points.c.series_id).distinct())).scalars()
        assert list(stored) == [series.id]
    assert await row_count(core, metric_rollups) == 3

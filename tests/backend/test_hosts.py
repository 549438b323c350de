"""Hosts: status from last_seen and the live settings, status events, deletion.

As in test_metrics, time is a clock the test owns, handed to services built
on a copy of the core's context; they share its database and bus.
"""

from __future__ import annotations

import asyncio
from contextlib import aclosing

import pytest
from sqlalchemy import event, func, select

from backend.core import Core
from backend.domain.errors import Forbidden, NotFound
from backend.domain.events import Event
from backend.domain.principal import Principal
from backend.services.hosts import SNAPSHOT_TTL
from backend.storage.models import metric_points, metric_rollups
from tests.backend.conftest import Team
from tests.backend.test_metrics import BASE, Clock, point, row_count, services_at

pytestmark = pytest.mark.asyncio


async def test_a_host_is_down_after_the_missed_intervals(core: Core, team: Team) -> None:
    clock = Clock(BASE)
    metrics, hosts = services_at(core, clock)
    await metrics.ingest(team.operator, [point("web-1", "cpu.percent", BASE, 1.0)])

    async def status() -> str:
        (host,) = await hosts.list(team.viewer)
        return host.status

    # Defaults: down after 3 missed intervals of 1 s.
    assert await status() == "up"
    clock.now = BASE + 3
    assert await status() == "up"
    clock.now = BASE + 3.001
    assert await status() == "down"

    # Both settings are live: a longer interval brings it back up.
    await core.settings.write(team.admin, "collector.interval_seconds", 10, expected_version=0)
    assert await status() == "up"
    clock.now = BASE + 30.5
    assert await status() == "down"


async def test_check_status_announces_changes_only(core: Core) -> None:
    clock = Clock(BASE)
    metrics, hosts = services_at(core, clock)
    system = Principal.system()
    marker = await core.ctx.bus.publish("test", {})
    async with aclosing(core.ctx.bus.subscribe(["hosts"], since=marker)) as events:  # type: ignore[type-var]

        async def next_event() -> dict[str, object]:
            async with asyncio.timeout(5):
                event = await anext(events)
            assert isinstance(event, Event)
            return event.data

        assert await hosts.check_status() == []
        await metrics.ingest(system, [point("web-1", "load.1", BASE, 1.0)])
        (registered,) = await hosts.check_status()
        assert registered == {"host": "web-1", "host_id": registered["host_id"], "status": "up"}
        assert await next_event() == registered
        assert await hosts.check_status() == []

        clock.now = BASE + 10
        assert [c["status"] for c in await hosts.check_status()] == ["down"]
        assert (await next_event())["status"] == "down"
        assert await hosts.check_status() == []

        await metrics.ingest(system, [point("web-1", "load.1", BASE + 10, 1.0)])
        assert [c["status"] for c in await hosts.check_status()] == ["up"]
        assert (await next_event())["status"] == "up"


async def test_delete_removes_the_host_and_its_data_and_is_audited(core: Core, team: Team) -> None:
    await core.metrics.ingest(
        team.operator,
        [
            point(h, m, BASE + s, 1.0)
            for h in ("keep", "drop")
            for m in ("load.1", "load.5")
            for s in range(3)
        ],
    )
    drop = next(h for h in await core.hosts.list(team.viewer) if h.name == "drop")

    with pytest.raises(Forbidden):
        await core.hosts.delete(team.operator, drop.id)
    await core.hosts.delete(team.admin, drop.id)

    assert [h.name for h in await core.hosts.list(team.viewer)] == ["keep"]
    assert {s.host for s in await core.metrics.series(team.viewer)} == {"keep"}
    assert await row_count(core, metric_points) == 6
    async with core.db.reader() as session:
        kept = select(func.count()).select_from(metric_rollups)
        assert (await session.execute(kept)).scalar_one() == 2 * 3  # two series, three levels
    page = await core.audit.list(team.admin, action="hosts.delete")
    assert [(e.actor, e.target, e.details) for e in page.entries] == [
        ("ada", "drop", {"host_id": drop.id})
    ]
    with pytest.raises(NotFound):
        await core.hosts.delete(team.admin, drop.id)

    # Reporting again registers it anew: the ingest cache forgot the old ids.
    await core.metrics.ingest(team.operator, [point("drop", "load.1", BASE + 9, 2.0)])
    again = next(h for h in await core.hosts.list(team.viewer) if h.name == "drop")
    assert (again.first_seen, again.last_seen) == (BASE + 9, BASE + 9)
    (series,) = await core.metrics.series(team.viewer, host="drop")
    reader, _ = services_at(core, Clock(BASE + 10))
    (data,) = await reader.query(team.viewer, [series.id], BASE, BASE + 60, 60)
    assert [(b.ts, b.count) for b in data.buckets] == [(BASE + 9, 1)]


async def test_ingest_recovers_when_another_server_deleted_the_host(core: Core) -> None:
    """Another instance's delete never reaches this one's cache: ingest notices by itself."""
    system = Principal.system()
    here, _ = services_at(core, Clock(BASE))
    _, elsewhere = services_at(core, Clock(BASE))
    await here.ingest(system, [point("web-1", "load.1", BASE, 1.0)])
    (host,) = await elsewhere.list(system)
    await elsewhere.delete(system, host.id)

    # Its points were written under the cached ids before the stale host
    # showed; that attempt rolled back entirely, so nothing of it is left.
    await here.ingest(system, [point("web-1", "load.1", BASE + 1, 2.0)])
    (series,) = await here.series(system)
    (data,) = await here.query(system, [series.id], BASE, BASE + 60, 60)
    assert [(b.ts, b.avg) for b in data.buckets] == [(BASE + 1, 2.0)]
    (registered,) = await elsewhere.list(system)
    assert (registered.name, registered.first_seen) == ("web-1", BASE + 1)
    async with core.db.reader() as session:
        stored = (await session.execute(select(metric_points.c.series_id))).scalars().all()
        folded = (await session.execute(select(metric_rollups.c.series_id))).scalars().all()
    assert (stored, folded) == ([series.id], [series.id] * 3)


async def test_listing_shows_this_process_at_once_and_another_instance_within_the_ttl(
    core: Core,
) -> None:
    """The listing answers from a snapshot: what this process ingests or deletes shows on
    the next call; what another server instance does, within SNAPSHOT_TTL."""
    system = Principal.system()
    clock = Clock(BASE)
    metrics, hosts = services_at(core, clock)
    other_metrics, other_hosts = services_at(core, clock)  # a second instance, same database

    await metrics.ingest(system, [point("web-1", "load.1", BASE, 1.0)])
    assert [(h.name, h.last_seen) for h in await hosts.list(system)] == [("web-1", BASE)]
    await metrics.ingest(system, [point("web-1", "load.1", BASE + 5, 1.0)])
    await metrics.ingest(system, [point("web-2", "load.1", BASE + 6, 1.0)])
    assert [(h.name, h.last_seen) for h in await hosts.list(system)] == [
        ("web-1", BASE + 5),
        ("web-2", BASE + 6),
    ]

    await other_metrics.ingest(system, [point("web-1", "load.1", BASE + 9, 1.0)])
    await other_metrics.ingest(system, [point("web-3", "load.1", BASE + 9, 1.0)])
    (web_2,) = [h for h in await other_hosts.list(system) if h.name == "web-2"]
    await other_hosts.delete(system, web_2.id)
    await asyncio.sleep(SNAPSHOT_TTL)
    assert [(h.name, h.last_seen) for h in await hosts.list(system)] == [
        ("web-1", BASE + 9),
        ("web-3", BASE + 9),
    ]
    # A report older than what the table holds does not move last_seen back.
    await metrics.ingest(system, [point("web-1", "load.1", BASE + 7, 1.0)])
    assert [h.last_seen for h in await hosts.list(system)] == [BASE + 9, BASE + 9]


async def test_listings_meanwhile_wait_for_one_read(core: Core) -> None:
    system = Principal.system()
    clock = Clock(BASE)
    metrics, hosts = services_at(core, clock)
    await metrics.ingest(system, [point(f"web-{n}", "load.1", BASE, 1.0) for n in range(3)])
    reads: list[str] = []

    def count(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        if "FROM hosts" in statement:
            reads.append(statement)

    engine = core.db.engine.sync_engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        listings = await asyncio.gather(*(hosts.list(system) for _ in range(20)))
        await hosts.list(system)
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert len(reads) == 1
    assert all([h.name for h in listed] == ["web-0", "web-1", "web-2"] for listed in listings)
    # The views are shared until something changes, but each caller gets its own list.
    listings[0].clear()
    assert len(await hosts.list(system)) == 3

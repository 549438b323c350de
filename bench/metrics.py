"""Ingest throughput and range-query latency of the metric store, on a real `Core`.

Both scenarios go through `MetricsService` as a front door would, on a fresh
database of their own: SQLite in a temporary directory, or a PostgreSQL
database created for the run (QUARTERDECK_BENCH_POSTGRES names the server)
and dropped afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import random
import statistics
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any

import psycopg
from pydantic import TypeAdapter

from backend.config import Settings
from backend.core import Core
from backend.domain.monitoring import PointIn, check_points
from backend.domain.principal import Principal
from backend.storage import metrics as store

BACKENDS = ("sqlite", "postgres")
DEFAULT_POSTGRES = "postgresql://postgres@127.0.0.1:5432/postgres"

HOSTS = 20
SERIES: tuple[tuple[str, dict[str, str]], ...] = (
    ("cpu.percent", {}),
    ("load.1", {}),
    ("mem.used_percent", {}),
    ("mem.used_bytes", {}),
    ("swap.used_percent", {}),
    ("net.rx_bytes_per_s", {}),
    ("net.tx_bytes_per_s", {}),
    ("cpu.core.percent", {"core": "0"}),
    ("cpu.core.percent", {"core": "1"}),
    ("cpu.core.percent", {"core": "2"}),
)
SECONDS_PER_BATCH = 50
"""20 hosts x 10 series x 50 seconds = 10,000 points per ingest call."""
BATCHES_PER_RUN = 5
INGEST_RUNS = 7
WARMUP_BATCHES = 3
INGEST_STREAMS = (1, 2)
"""Concurrent ingesters measured: one, and two pushing different hosts at once."""

DAY = 86_400
QUERY_DAYS = 30
LOAD_CHUNK = 100_000
MAX_POINTS = 1500
QUERY_RUNS = 25
QUERY_WARMUP = 3

Table = list[tuple[str, ...]]


@contextlib.asynccontextmanager
async def open_core(backend: str) -> AsyncIterator[Core]:
    """A migrated core on an empty database that disappears afterwards."""
    with tempfile.TemporaryDirectory(prefix="qd-bench-") as tmp:
        if backend == "sqlite":
            url = f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}"
            async with Core.open(_settings(tmp, url)) as core:
                yield core
            return
        admin = os.environ.get("QUARTERDECK_BENCH_POSTGRES", DEFAULT_POSTGRES)
        name = f"qd_bench_{os.getpid()}_{uuid.uuid4().hex[:6]}"
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        try:
            async with Core.open(_settings(tmp, admin.rsplit("/", 1)[0] + f"/{name}")) as core:
                yield core
        finally:
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _settings(data_dir: str, url: str) -> Settings:
    return Settings(
        data_dir=Path(data_dir),
        database_url=url,
        secret_key="bench",
        run_jobs=False,
        auto_migrate=True,
    )


def print_table(title: str, rows: Table) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    print(f"\n{title}")
    for n, row in enumerate(rows):
        print("  ".join(cell.rjust(width) for cell, width in zip(row, widths, strict=True)))
        if n == 0:
            print("  ".join("-" * width for width in widths))


# -- ingest ---------------------------------------------------------------------


def ingest_batch(start: int, rng: random.Random, prefix: str = "bench") -> list[PointIn]:
    """10,000 validated points: every host and series for SECONDS_PER_BATCH seconds."""
    return [
        PointIn(
            host=f"{prefix}-{host:02d}",
            metric=metric,
            labels=labels,
            ts=float(start + second),
            value=rng.uniform(0, 100),
        )
        for second in range(SECONDS_PER_BATCH)
        for host in range(HOSTS)
        for metric, labels in SERIES
    ]


async def ingest_backend(backend: str, streams: int) -> tuple[str, ...]:
    """Median points/s over INGEST_RUNS runs of BATCHES_PER_RUN batches per stream.

    With several streams, each pushes its own hosts' batches one after the
    other, concurrently with the others (agents of different hosts pushing
    at once); the rate is all their points over the run's wall time. Each
    run's batches are built (validated) first and the garbage collector is
    run before the clock starts, so neither the input's construction nor
    its later collection is charged to ingest.
    """
    rng = random.Random(7)
    system = Principal.system("bench")
    origin = int(time.time()) - 86_400
    batch_number = iter(range(1_000_000))
    prefixes = [f"bench-{n}" for n in range(streams)]

    def batches(prefix: str, count: int) -> list[list[PointIn]]:
        return [
            ingest_batch(origin + next(batch_number) * SECONDS_PER_BATCH, rng, prefix)
            for _ in range(count)
        ]

    async def push(run: list[list[PointIn]]) -> None:
        for batch in run:
            await core.metrics.ingest(system, batch)

    rates = []
    async with open_core(backend) as core:
        await asyncio.gather(*(push(batches(p, WARMUP_BATCHES)) for p in prefixes))
        for _ in range(INGEST_RUNS):
            runs = [batches(p, BATCHES_PER_RUN) for p in prefixes]
            points = sum(len(batch) for run in runs for batch in run)
            gc.collect()
            began = time.perf_counter()
            await asyncio.gather(*map(push, runs))
            rates.append(points / (time.perf_counter() - began))
    median = statistics.median(rates)
    return (
        backend,
        str(streams),
        f"{median:,.0f}",
        f"{min(rates):,.0f}",
        f"{max(rates):,.0f}",
        f"{1e3 * HOSTS * len(SERIES) * SECONDS_PER_BATCH / median:.1f}",
    )


def validation_rates() -> Table:
    """Points/s of each way a batch gets validated, median of INGEST_RUNS runs of one batch.

    Built one by one as `PointIn`s (the local collector, this benchmark);
    as `list[PointIn]` from dicts (what a model-typed request body costs);
    with `check_points` from dicts (what ingest does with mappings).
    """
    rng = random.Random(3)
    dicts = [point.model_dump() for point in ingest_batch(0, rng)]
    strict = TypeAdapter(list[PointIn])
    ways: dict[str, Callable[[], object]] = {
        "PointIn(...) per point": lambda: [PointIn(**point) for point in dicts],
        "list[PointIn] over dicts": lambda: strict.validate_python(dicts),
        "check_points over dicts": lambda: check_points(dicts),
    }
    rows: Table = [("validation", "points/s (median)")]
    for name, way in ways.items():
        rates = []
        for _ in range(INGEST_RUNS):
            began = time.perf_counter()
            way()
            rates.append(len(dicts) / (time.perf_counter() - began))
        rows.append((name, f"{statistics.median(rates):,.0f}"))
    return rows


async def ingest(backends: list[str]) -> None:
    rows: Table = [
        ("backend", "streams", "points/s (median)", "min", "max", "ms per 10k batch (1 stream)")
    ]
    for backend in backends:
        for streams in INGEST_STREAMS:
            row = await ingest_backend(backend, streams)
            rows.append(row if streams == 1 else (*row[:-1], ""))
    print_table(
        f"ingest: {INGEST_RUNS} runs of {BATCHES_PER_RUN} x 10,000-point batches per stream "
        "(points, rollups and last_seen; PointIn built beforehand)",
        rows,
    )
    print_table("validation of one 10,000-point batch", validation_rates())


# -- query ----------------------------------------------------------------------


async def load_month(core: Core, end: int) -> int:
    """One series with a point every second for QUERY_DAYS days up to `end`.

    The first point goes through `ingest` (registering host and series);
    the rest is written by the same storage functions ingest uses, in
    large chunks, skipping PointIn validation, which would dominate here.
    """
    rng = random.Random(11)
    start = end - QUERY_DAYS * DAY
    first = PointIn(host="bench-q", metric="cpu.percent", ts=float(start), value=50.0)
    await core.metrics.ingest(Principal.system("bench"), [first])
    (series,) = await core.metrics.series(Principal.system("bench"), host="bench-q")
    for chunk_start in range(start + 1, end, LOAD_CHUNK):
        stamps = [float(t) for t in range(chunk_start, min(chunk_start + LOAD_CHUNK, end))]
        batch = store.SeriesPoints(series.id, stamps, [rng.uniform(0, 100) for _ in stamps])
        async with core.db.transaction() as session:
            await store.write_batch(session, [batch])
    return series.id


async def _timed(call: Callable[[], Awaitable[object]]) -> float:
    for _ in range(QUERY_WARMUP):
        await call()
    samples = []
    for _ in range(QUERY_RUNS):
        began = time.perf_counter()
        await call()
        samples.append(time.perf_counter() - began)
    return statistics.median(samples)


async def query_backend(backend: str) -> tuple[str, ...]:
    system = Principal.system("bench")
    end = int(time.time())
    async with open_core(backend) as core:
        loaded = time.perf_counter()
        sid = await load_month(core, end)
        load_seconds = time.perf_counter() - loaded
        spans = {"1 hour": 3600, "30 days": QUERY_DAYS * DAY}
        medians = {}
        shapes = {}
        for label, span in spans.items():

            async def call(span: int = span) -> object:
                return await core.metrics.query(system, [sid], end - span, end, MAX_POINTS)

            medians[label] = await _timed(call)
            (data,) = await core.metrics.query(system, [sid], end - span, end, MAX_POINTS)
            shapes[label] = f"r={data.resolution} n={len(data.buckets)}"
    hour, month = medians["1 hour"], medians["30 days"]
    return (
        backend,
        f"{1e3 * hour:.2f} ({shapes['1 hour']})",
        f"{1e3 * month:.2f} ({shapes['30 days']})",
        f"{month / hour:.2f}",
        f"{load_seconds:.0f}",
    )


async def query(backends: list[str]) -> None:
    rows: Table = [("backend", "1 hour, ms", "30 days, ms", "30d / 1h", "load s")]
    for backend in backends:
        rows.append(await query_backend(backend))
    print_table(
        f"query: one series, {QUERY_DAYS} days of 1 s points, max_points={MAX_POINTS}, "
        f"median of {QUERY_RUNS} runs",
        rows,
    )


SCENARIOS: dict[str, Callable[[list[str]], Coroutine[Any, Any, None]]] = {
    "ingest": ingest,
    "query": query,
}

"""Hosts, series and range queries over points an agent pushed."""

from __future__ import annotations

import time

import pytest

from console.client.errors import InvalidInput
from tests.contract.conftest import Harness

pytestmark = pytest.mark.asyncio


async def test_hosts_series_and_query(harness: Harness) -> None:
    client = harness.client
    assert await client.list_hosts() == []
    now = float(int(time.time()))
    points = [
        {"host": "web-1", "metric": "cpu.percent", "ts": now - 60 + i, "value": float(i)}
        for i in range(60)
    ]
    points += [
        {
            "host": "web-2",
            "metric": "cpu.core.percent",
            "labels": {"core": "0"},
            "ts": now - 1,
            "value": 42.0,
        }
    ]
    await harness.ingest_points(points)

    hosts = await client.list_hosts()
    assert [(host.name, host.status) for host in hosts] == [("web-1", "up"), ("web-2", "up")]

    everything = await client.list_series()
    assert {(series.host, series.metric) for series in everything} == {
        ("web-1", "cpu.percent"),
        ("web-2", "cpu.core.percent"),
    }
    (web1,) = await client.list_series(host="web-1")
    (core,) = await client.list_series(metric="cpu.core.percent")
    assert core.labels == {"core": "0"}

    data = await client.query_metrics([web1.id, core.id], start=now - 60, end=now + 1, max_points=6)
    assert [series.series_id for series in data] == [web1.id, core.id]
    buckets = data[0].buckets
    assert len(buckets) == 6
    assert sum(bucket.count for bucket in buckets) == 60
    assert (buckets[0].min, buckets[-1].max) == (0.0, 59.0)
    assert data[1].buckets[0].max == 42.0

    with pytest.raises(InvalidInput):
        await client.query_metrics([web1.id], start=now, end=now - 60, max_points=6)

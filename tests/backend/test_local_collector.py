"""The embedded core samples this machine while it runs."""

from __future__ import annotations

import asyncio
import time

import pytest

from backend.core import Core
from backend.domain.principal import Principal
from tests.conftest import Backend

pytestmark = pytest.mark.asyncio


async def test_local_collector_records_this_machine(backend: Backend) -> None:
    settings = backend.settings.model_copy(
        update={"collect_local": True, "local_host_name": "this-machine", "run_jobs": True}
    )
    async with Core.open(settings) as core:
        reader = Principal.system("test")
        deadline = time.monotonic() + 10
        names: set[str] = set()
        while time.monotonic() < deadline:
            names = {series.metric for series in await core.metrics.series(reader)}
            # Rates need two samples, so their presence proves the beat keeps going.
            if {"cpu.percent", "mem.used_percent", "net.rx_bytes_per_s"} <= names:
                break
            await asyncio.sleep(0.2)
        assert {"cpu.percent", "cpu.core.percent", "mem.used_percent"} <= names
        assert "net.rx_bytes_per_s" in names
        hosts = await core.hosts.list(reader)
        assert [(host.name, host.status) for host in hosts] == [("this-machine", "up")]
        cpu = await core.metrics.series(reader, metric="cpu.percent")
        now = time.time()
        data = await core.metrics.query(reader, [cpu[0].id], now - 60, now + 1, 60)
        values = [bucket.max for bucket in data[0].buckets]
        assert values
        assert all(0.0 <= value <= 100.0 for value in values)

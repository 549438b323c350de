"""The embedded mode's own collector: sample this machine into the local core."""

from __future__ import annotations

import asyncio
import logging
import time

from backend.collector.sampler import Sampler
from backend.domain.monitoring import PointIn
from backend.domain.principal import Principal
from backend.services.metrics import MetricsService
from backend.services.settings import SettingsService

log = logging.getLogger(__name__)


async def run_local_collector(
    *, metrics: MetricsService, settings: SettingsService, host: str
) -> None:
    """Sample every `collector.interval_seconds` on a fixed beat, until cancelled.

    The beat is kept against the monotonic clock, so a slow ingest shortens
    the next wait instead of drifting the schedule; a failed ingest (a busy
    database) is logged and the next beat goes on.
    """
    sampler = Sampler()
    principal = Principal.system("collector")
    loop = asyncio.get_running_loop()
    next_beat = loop.time()
    while True:
        interval = float(await settings.value("collector.interval_seconds"))
        now = time.time()
        points = [
            PointIn(host=host, metric=s.metric, labels=s.labels, ts=now, value=s.value)
            for s in sampler.sample(now)
        ]
        if points:
            try:
                await metrics.ingest(principal, points)
            except Exception:
                log.exception("the local collector could not store a sample")
        next_beat += interval
        delay = next_beat - loop.time()
        if delay < 0:  # fell behind (suspend, long stall): restart the beat from now
            next_beat = loop.time()
            delay = 0.0
        await asyncio.sleep(delay)

"""Render the Overview and Hosts panels with realistic data, light and dark, to look at.

    QT_QPA_PLATFORM=offscreen python -m tests.console.render_hosts docs/screenshots

An embedded core in a temporary directory holds the last hour of four hosts
(5-second points: CPU total and per core, load, memory, swap, two mounts,
disk and network rates); cache-1 stopped reporting eight minutes ago.
Writes panel-overview-{light,dark}.png and panel-host-{light,dark}.png.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtWidgets import QApplication

from backend.config import Settings
from backend.domain.principal import Principal
from console import theme
from console.client.local import LocalClient
from console.panels.hosts import HostsPanel
from console.panels.overview import OverviewPanel
from tests.conftest import PASSWORD, TEST_SECRET
from tests.qtloop import new_qasync_loop

STEP = 5.0
HOSTS = {
    # name: (cores, cpu level, memory level, seconds since the last point)
    "web-1": (4, 28.0, 46.0, 0.0),
    "web-2": (4, 22.0, 41.0, 0.0),
    "db-1": (8, 55.0, 78.0, 0.0),
    "cache-1": (2, 12.0, 63.0, 480.0),
}


def host_points(name: str, now: float, rng: np.random.Generator) -> list[dict[str, Any]]:
    cores, cpu_level, memory_level, silent = HOSTS[name]
    ts = np.arange(now - 3600, now - silent + STEP / 2, STEP)
    n = len(ts)
    wave = np.sin(ts / 700 + len(name)) * 8
    spikes = (rng.random(n) > 0.985) * rng.uniform(15, 35, n)
    cpu = np.clip(cpu_level + wave + rng.normal(0, 3, n) + spikes, 0, 100)
    load = np.maximum(0, cpu / 100 * cores + rng.normal(0, 0.1, n))
    series: list[tuple[str, dict[str, str], np.ndarray]] = [
        ("cpu.percent", {}, cpu),
        ("mem.used_percent", {}, np.clip(memory_level + np.cumsum(rng.normal(0, 0.05, n)), 0, 100)),
        ("swap.used_percent", {}, np.full(n, 2.5 if name != "db-1" else 11.0)),
        ("load.1", {}, smoothed(load, 60)),
        ("load.5", {}, smoothed(load, 300)),
        ("load.15", {}, smoothed(load, 900)),
        ("disk.used_percent", {"mount": "/"}, np.linspace(41, 41.4, n)),
        ("disk.used_percent", {"mount": "/var"}, np.linspace(67, 69 if silent else 67.5, n)),
        ("disk.read_bytes_per_s", {}, np.abs(rng.normal(2.5e6, 1.2e6, n)) * (cpu / 40)),
        ("disk.write_bytes_per_s", {}, np.abs(rng.normal(1.2e6, 6e5, n)) * (cpu / 40)),
        ("net.rx_bytes_per_s", {}, np.abs(4e6 + 2e6 * np.sin(ts / 400) + rng.normal(0, 6e5, n))),
        ("net.tx_bytes_per_s", {}, np.abs(1.5e6 + 8e5 * np.sin(ts / 400) + rng.normal(0, 3e5, n))),
    ]
    for core in range(cores):
        offset = (core - cores / 2) * 3 + (10 if core == 0 else 0)
        share = np.clip(smoothed(cpu + rng.normal(0, 4, n), 20) + offset, 0, 100)
        series.append(("cpu.core.percent", {"core": str(core)}, share))
    return [
        {"host": name, "metric": metric, "labels": labels, "ts": t, "value": v}
        for metric, labels, values in series
        for t, v in zip(ts.tolist(), values.tolist(), strict=True)
    ]


def smoothed(values: np.ndarray, seconds: float) -> np.ndarray:
    """An exponential moving average over about `seconds`, as load averages are."""
    alpha = STEP / seconds
    out = np.empty_like(values)
    level = float(values[0])
    for i, value in enumerate(values.tolist()):
        level += alpha * (value - level)
        out[i] = level
    return out


async def _settle(seconds: float) -> None:
    await asyncio.sleep(seconds)


async def render(folder: Path) -> None:
    app = QApplication.instance()
    assert isinstance(app, QApplication)
    app.setQuitOnLastWindowClosed(False)
    manager = theme.install(app)
    rng = np.random.default_rng(11)
    with tempfile.TemporaryDirectory() as data:
        settings = Settings(
            data_dir=Path(data),
            secret_key=TEST_SECRET,
            run_jobs=False,
            collect_local=False,
            live_events=True,
        )
        client = await LocalClient.open(settings)
        try:
            me = await client.create_first_admin(username="ada", password=PASSWORD)
            interval = await client.get_setting("collector.interval_seconds")
            await client.write_setting(
                "collector.interval_seconds", 5, expected_version=interval.version
            )
            now = time.time()
            for name in HOSTS:
                points = host_points(name, now, rng)
                for start in range(0, len(points), 40_000):
                    batch = points[start : start + 40_000]
                    await client.backend_call(
                        lambda core, b=batch: core.metrics.ingest(Principal.system(), b)
                    )

            overview = OverviewPanel(client, me)
            overview.resize(1000, 520)
            overview.show()
            await _settle(1.5)
            for name in (theme.Theme.LIGHT, theme.Theme.DARK):
                manager.set_theme(name)
                await _settle(0.3)
                target = folder / f"panel-overview-{name.value}.png"
                overview.grab().save(str(target))
                print(target)
            await overview.shutdown()
            overview.close()

            manager.set_theme(theme.Theme.LIGHT)
            hosts = HostsPanel(client, me)
            hosts.resize(1400, 980)
            hosts.show()
            await _settle(0.5)
            hosts.reveal("db-1")
            await _settle(2.5)
            for name in (theme.Theme.LIGHT, theme.Theme.DARK):
                manager.set_theme(name)
                await _settle(0.5)
                target = folder / f"panel-host-{name.value}.png"
                hosts.grab().save(str(target))
                print(target)
            await hosts.shutdown()
            hosts.close()
        finally:
            await client.close()


def main() -> None:
    folder = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    loop = new_qasync_loop()
    asyncio.set_event_loop(loop)
    loop.run_until_complete(render(folder))


if __name__ == "__main__":
    main()

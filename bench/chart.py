"""`python -m bench chart`: frames per second of the live chart, offscreen.

Two pages a user keeps open:

- host: 8 live series of 3,600 points (an hour at 1 Hz) in the 1 h preset;
  every frame appends one point to each series, applies it (`flush`, one
  `setData` per curve) and scrolls the window. Target >= 60 fps.
- month: 32 series of 1,500 buckets with min/max bands in the 30 d preset;
  every frame pans the window by one bucket, so clipping and the bands'
  per-pixel reduction are redone. Target >= 30 fps.

A frame is only counted once painted: `viewport().repaint()` paints
synchronously (an `update()` would let Qt merge frames away). Each figure is
the median of `--runs` runs of `--seconds`. The chart is 1000 x 600 as in
QT-NOTES' table. The machine's load average is printed: on a shared 2-core
machine, other work lowers the figures. Exit status 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

TARGETS = {"host": 60.0, "month": 30.0}
WARMUP = 0.5
"""Seconds of frames before each run, not measured (first paints build caches)."""
START = 1_764_000_000.0


@dataclass
class _Bucket:
    ts: float
    min: float
    max: float
    avg: float


def _host_page() -> tuple[object, Callable[[], None]]:
    import numpy as np

    from console.widgets.chart import LiveChart, RangePreset, ValueFormat

    now = [START]
    chart = LiveChart(
        ValueFormat("%", 1, "cpu.core.percent"), preset=RangePreset.H1, clock=lambda: now[0]
    )
    rng = np.random.default_rng(7)
    levels = rng.uniform(10, 80, size=8)
    for series in range(8):
        chart.add_series(f"core{series}", f"core {series}")
        values = np.clip(levels[series] + rng.normal(0, 5, 3_600), 0, 100)
        for i, value in enumerate(values.tolist()):
            chart.append(f"core{series}", START - 3_600 + i, value)
    noise = np.clip(rng.normal(0, 5, (8, 4096)), -20, 20)
    frame = [0]

    def step() -> None:
        now[0] += 1.0
        column = frame[0] % noise.shape[1]
        for series in range(8):
            value = float(min(100.0, max(0.0, levels[series] + noise[series, column])))
            chart.append(f"core{series}", now[0], value)
        frame[0] += 1
        chart.flush()

    return chart, step


def _month_page() -> tuple[object, Callable[[], None]]:
    import numpy as np

    from console.widgets.chart import LiveChart, RangePreset, ValueFormat

    span = RangePreset.D30.seconds
    width = span / 1_500
    chart = LiveChart(
        ValueFormat("B/s", 0, "net.rx_bytes_per_s"), preset=RangePreset.D30, clock=lambda: START
    )
    rng = np.random.default_rng(11)
    for series in range(32):
        walk = np.abs(1e6 * (1 + series / 8) + np.cumsum(rng.normal(0, 5e4, 1_500)))
        spread = np.abs(rng.normal(0, 2e5, 1_500)) * (1 + 4 * (rng.random(1_500) > 0.97))
        buckets = [
            _Bucket(START - span + i * width, max(0.0, a - s / 2), a + s, a)
            for i, (a, s) in enumerate(zip(walk.tolist(), spread.tolist(), strict=True))
        ]
        chart.set_buckets(f"host{series}", buckets, width)
    chart.flush()
    frame = [0]

    def step() -> None:
        frame[0] += 1
        shift = (frame[0] % 200) * width  # pan back over a day and a half, then again
        chart.set_window(START - span - shift, START - shift)

    return chart, step


SCENARIOS = {
    "host": ("host page: 8 x 3,600 live points, +1 per series per frame", _host_page),
    "month": ("30 days: 32 x 1,500 buckets with bands, panned each frame", _month_page),
}


def _fps(
    build: Callable[[], tuple[object, Callable[[], None]]], seconds: float, snapshot: str | None
) -> float:
    from PySide6.QtWidgets import QApplication

    from console.widgets.chart import LiveChart

    chart, step = build()
    assert isinstance(chart, LiveChart)
    chart.resize(1000, 600)
    chart.show()
    # Lay the widget out and paint once before timing: a never-shown viewport
    # would "repaint" nothing, very fast.
    QApplication.processEvents()
    viewport = chart._view.viewport()
    if viewport.width() < 900 or not viewport.isVisible():
        raise RuntimeError(f"the plot is not laid out ({viewport.width()} px wide)")
    if snapshot is not None:
        chart.grab().save(snapshot)

    def frames(duration: float) -> tuple[int, float]:
        count = 0
        began = time.perf_counter()
        while (elapsed := time.perf_counter() - began) < duration:
            step()
            viewport.repaint()
            count += 1
        return count, elapsed

    frames(WARMUP)
    count, elapsed = frames(seconds)
    if snapshot is not None:
        chart.grab().save(snapshot.replace(".png", "-end.png"))
    chart.close()
    chart.deleteLater()
    return count / elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench chart", description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=2.5, help="per measured run")
    parser.add_argument("--scenario", choices=sorted(SCENARIOS), action="append")
    parser.add_argument(
        "--snapshots", metavar="DIR", help="save the first run's first and last frames as PNG"
    )
    args = parser.parse_args(argv)
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication([])
    load_before = os.getloadavg()[0]
    cpu_before = time.process_time()
    wall_before = time.perf_counter()
    print(
        f"offscreen ({app.platformName()}), 1000 x 600, median of {args.runs} x "
        f"{args.seconds:g} s; load average {load_before:.2f} on {os.cpu_count()} cores"
    )
    print(f"{'scenario':<62} {'fps':>7} {'runs':>17} {'target':>8}")
    ok = True
    for name in args.scenario or list(SCENARIOS):
        label, build = SCENARIOS[name]
        snapshot = f"{args.snapshots}/bench-chart-{name}.png" if args.snapshots else None
        runs = [_fps(build, args.seconds, snapshot if n == 0 else None) for n in range(args.runs)]
        app.processEvents()  # let the closed charts go
        fps = statistics.median(runs)
        met = fps >= TARGETS[name]
        ok = ok and met
        spread = f"{min(runs):.0f}-{max(runs):.0f}"
        print(
            f"{label:<62} {fps:7.1f} {spread:>17} {'>= ' + format(TARGETS[name], '.0f'):>8}"
            f"  {'OK' if met else 'MISSED'}"
        )
    busy = (time.process_time() - cpu_before) / max(time.perf_counter() - wall_before, 1e-9)
    print(
        f"this process used {busy:.2f} cores; load average now {os.getloadavg()[0]:.2f} "
        f"(above ~{math.ceil(busy)} means other work shared the machine)"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

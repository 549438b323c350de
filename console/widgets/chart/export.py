"""CSV of what a chart shows: one row per drawn point of each visible series."""

from __future__ import annotations

import csv
from collections.abc import Iterable
from datetime import datetime
from typing import TextIO

import numpy as np

from console.widgets.chart.series import Display
from console.widgets.chart.units import ValueFormat

CSV_HEADER = ("time", "epoch", "series", "min", "max", "avg")


def write_csv(
    out: TextIO,
    series: Iterable[tuple[str, Display]],
    start: float,
    end: float,
    value_format: ValueFormat,
) -> int:
    """Rows inside `[start, end]`, series by series, oldest first; returns the row count.

    Time is written twice: ISO 8601 in local time with its offset for a person
    or a spreadsheet, and epoch seconds for a program. Gap markers are left out.
    """
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_HEADER)
    rows = 0
    fmt = value_format.format_csv
    for label, display in series:
        window = display.visible(start, end)
        x, lo, hi, avg = (a[window] for a in (display.x, display.lo, display.hi, display.avg))
        for i in np.flatnonzero(np.isfinite(avg)):
            ts = float(x[i])
            iso = datetime.fromtimestamp(ts).astimezone().isoformat(timespec="seconds")
            writer.writerow((iso, _epoch(ts), label, fmt(lo[i]), fmt(hi[i]), fmt(avg[i])))
            rows += 1
    return rows


def _epoch(ts: float) -> str:
    return str(int(ts)) if ts.is_integer() else f"{ts:.3f}"

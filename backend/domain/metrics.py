"""Every metric the collector emits, declared once as data.

Validation of pushed points, the API schema, chart axes and value formatting
all read `METRICS`, so adding a metric here is the only step that makes it
known everywhere; a name that is not here is not a metric.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True, slots=True)
class MetricSpec:
    """How to interpret, validate and display one metric."""

    name: str
    unit: str
    """Display unit ("%", "B", "B/s"); empty for dimensionless values."""
    kind: Literal["gauge", "rate"]
    """`gauge` is a level read directly; `rate` is derived from counter deltas
    and so is missing for the first interval and across counter resets."""
    description: str
    precision: int
    """Decimal places worth showing; finer digits are measurement noise."""


@dataclass(frozen=True, slots=True)
class Sample:
    """One measured value, before the caller stamps it with host and time.

    Host and timestamp are left out so the sampler stays unaware of where it
    runs and how the caller batches: the agent and the embedded mode stamp
    the same samples differently.
    """

    metric: str
    labels: dict[str, str]
    value: float


_SPECS = (
    MetricSpec(
        "cpu.percent",
        "%",
        "gauge",
        "CPU busy time across all cores since the previous sample",
        1,
    ),
    MetricSpec(
        "cpu.core.percent",
        "%",
        "gauge",
        'CPU busy time of one core (label core="N") since the previous sample',
        1,
    ),
    MetricSpec("load.1", "", "gauge", "Load average over 1 minute", 2),
    MetricSpec("load.5", "", "gauge", "Load average over 5 minutes", 2),
    MetricSpec("load.15", "", "gauge", "Load average over 15 minutes", 2),
    MetricSpec(
        "mem.used_percent",
        "%",
        "gauge",
        "Share of physical memory not available to new processes",
        1,
    ),
    MetricSpec("mem.used_bytes", "B", "gauge", "Physical memory in use", 0),
    MetricSpec(
        "mem.available_bytes",
        "B",
        "gauge",
        "Physical memory that can be given to processes without swapping",
        0,
    ),
    MetricSpec("swap.used_percent", "%", "gauge", "Share of swap space in use", 1),
    MetricSpec(
        "disk.used_percent",
        "%",
        "gauge",
        "Share of a file system in use (label mount)",
        1,
    ),
    MetricSpec(
        "disk.read_bytes_per_s",
        "B/s",
        "rate",
        "Bytes read from all physical disks",
        0,
    ),
    MetricSpec(
        "disk.write_bytes_per_s",
        "B/s",
        "rate",
        "Bytes written to all physical disks",
        0,
    ),
    MetricSpec(
        "net.rx_bytes_per_s",
        "B/s",
        "rate",
        "Bytes received on all non-loopback interfaces, or on one (label nic)",
        0,
    ),
    MetricSpec(
        "net.tx_bytes_per_s",
        "B/s",
        "rate",
        "Bytes sent on all non-loopback interfaces, or on one (label nic)",
        0,
    ),
)

METRICS: dict[str, MetricSpec] = {spec.name: spec for spec in _SPECS}

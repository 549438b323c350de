"""One host's metrics, read from psutil once per interval.

The sampler runs every second on every agent, so it reads each psutil source
once per call and re-reads the mount table only now and then. Platforms differ
in what they offer (no load average on some Windows builds, no disk counters
in many containers, no swap); whatever is missing is left out rather than
reported as zero, so a chart shows a gap instead of a false value.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import TypeVar

import psutil

from backend.domain.metrics import Sample

_T = TypeVar("_T")

# What psutil raises when the OS lacks a source: a missing function on some
# platforms, an unreadable /proc file in containers, "no disks found" in older
# releases. Anything else is a bug and should surface.
_UNAVAILABLE = (AttributeError, NotImplementedError, OSError, RuntimeError, psutil.Error)

# Loopback traffic never leaves the host, and it would swamp the total on
# hosts talking to a local database. Names: Linux "lo", BSD/macOS "lo0",
# Windows "Loopback Pseudo-Interface 1".
_LOOPBACK = re.compile(r"lo\d*|loopback.*", re.IGNORECASE)

_NET_METRICS = ("net.rx_bytes_per_s", "net.tx_bytes_per_s")
_DISK_METRICS = ("disk.read_bytes_per_s", "disk.write_bytes_per_s")


def _read(source: Callable[[], _T]) -> _T | None:
    try:
        return source()
    except _UNAVAILABLE:
        return None


@dataclass(frozen=True, slots=True)
class _Counters:
    """Cumulative byte counters at one instant; rates are differences of two."""

    at: float
    disk: tuple[int, int] | None
    """Read and written bytes over all physical disks, None when unreadable."""
    nics: dict[str, tuple[int, int]] | None
    """Received and sent bytes per non-loopback interface."""


class Sampler:
    """Turns psutil readings into `Sample`s, keeping what rates need between calls.

    `now` is taken from the caller, not read here, so rates are computed over
    exactly the interval the caller stamps, and tests can control time.
    """

    def __init__(self, *, mounts_ttl: float = 60.0) -> None:
        """Prime psutil's CPU baseline; byte counters get theirs from the first `sample`.

        `mounts_ttl` is how long, in the caller's `now` units, the list of
        mount points is reused: mounts rarely change, while listing them costs
        more than every other reading here together.
        """
        self._mounts_ttl = mounts_ttl
        self._mounts: list[str] = []
        self._mounts_read_at: float | None = None
        self._previous: _Counters | None = None
        # psutil measures cpu_percent(interval=None) since its previous call;
        # without this the first sample would cover the time since boot.
        _read(lambda: psutil.cpu_percent(interval=None, percpu=True))

    def sample(self, now: float) -> list[Sample]:
        """Read every metric once; rates cover the time since the previous call.

        The first call has no earlier counters, so it returns gauges only.
        """
        samples = [
            *self._cpu(),
            *self._load(),
            *self._memory(),
            *self._swap(),
            *self._disk_usage(now),
        ]
        counters = _Counters(at=now, disk=self._disk_io(), nics=self._net_io())
        if self._previous is not None:
            samples.extend(_rates(self._previous, counters))
        self._previous = counters
        return samples

    def _cpu(self) -> list[Sample]:
        # One per-core read serves both metrics: the total is the mean of the
        # cores, since every core is measured over the same wall-clock interval.
        cores = _read(lambda: psutil.cpu_percent(interval=None, percpu=True))
        if not cores:
            return []
        samples = [Sample("cpu.percent", {}, sum(cores) / len(cores))]
        samples.extend(
            Sample("cpu.core.percent", {"core": str(index)}, value)
            for index, value in enumerate(cores)
        )
        return samples

    def _load(self) -> list[Sample]:
        # Looked up inside the try: older psutil builds lack the function on
        # some platforms, which is just another way of not having a load.
        try:
            one, five, fifteen = psutil.getloadavg()
        except _UNAVAILABLE:
            return []
        return [
            Sample("load.1", {}, one),
            Sample("load.5", {}, five),
            Sample("load.15", {}, fifteen),
        ]

    def _memory(self) -> list[Sample]:
        memory = _read(psutil.virtual_memory)
        if memory is None:
            return []
        return [
            Sample("mem.used_percent", {}, memory.percent),
            Sample("mem.used_bytes", {}, float(memory.used)),
            Sample("mem.available_bytes", {}, float(memory.available)),
        ]

    def _swap(self) -> list[Sample]:
        swap = _read(psutil.swap_memory)
        # No swap configured reads as 0 % used, which would look like a
        # healthy swap space on the charts.
        if swap is None or swap.total == 0:
            return []
        return [Sample("swap.used_percent", {}, swap.percent)]

    def _disk_usage(self, now: float) -> list[Sample]:
        samples = []
        for mount in self._mount_points(now):
            usage = _read(partial(psutil.disk_usage, mount))
            if usage is not None:
                samples.append(Sample("disk.used_percent", {"mount": mount}, usage.percent))
        return samples

    def _mount_points(self, now: float) -> list[str]:
        read_at = self._mounts_read_at
        # A clock that went backwards also forces a re-read.
        if read_at is None or not read_at <= now < read_at + self._mounts_ttl:
            # all=False keeps physical devices: no proc, tmpfs or network
            # file systems, which could also block on a dead server.
            partitions = _read(lambda: psutil.disk_partitions(all=False)) or []
            self._mounts = list(dict.fromkeys(p.mountpoint for p in partitions))
            self._mounts_read_at = now
        return self._mounts

    def _disk_io(self) -> tuple[int, int] | None:
        disk = _read(lambda: psutil.disk_io_counters(perdisk=False))
        if disk is None:
            return None
        return disk.read_bytes, disk.write_bytes

    def _net_io(self) -> dict[str, tuple[int, int]] | None:
        nics = _read(lambda: psutil.net_io_counters(pernic=True))
        if nics is None:
            return None
        return {
            name: (counters.bytes_recv, counters.bytes_sent)
            for name, counters in nics.items()
            if not _LOOPBACK.fullmatch(name)
        }


def _rates(before: _Counters, after: _Counters) -> list[Sample]:
    """Bytes per second between two readings; a counter that went backwards
    (reset, wrap, device replaced) yields no sample, as any value would be a lie.
    """
    elapsed = after.at - before.at
    if elapsed <= 0:
        return []
    samples = []
    if before.disk is not None and after.disk is not None:
        for metric, old, new in zip(_DISK_METRICS, before.disk, after.disk, strict=True):
            if new >= old:
                samples.append(Sample(metric, {}, (new - old) / elapsed))
    if before.nics is not None and after.nics is not None:
        samples.extend(_net_rates(before.nics, after.nics, elapsed))
    return samples


def _net_rates(
    before: dict[str, tuple[int, int]], after: dict[str, tuple[int, int]], elapsed: float
) -> list[Sample]:
    # The total is summed from per-interface deltas rather than from a total
    # counter: interfaces come and go (container veths), and a new one would
    # otherwise add its whole lifetime's bytes to a single interval.
    samples = []
    for direction, metric in enumerate(_NET_METRICS):
        total = 0
        complete = True
        for nic, counts in after.items():
            if nic not in before:
                continue
            delta = counts[direction] - before[nic][direction]
            if delta < 0:
                complete = False
                continue
            total += delta
            samples.append(Sample(metric, {"nic": nic}, delta / elapsed))
        if complete:
            samples.append(Sample(metric, {}, total / elapsed))
    return samples

"""The sampler against real psutil, plus the OS quirks a test machine lacks.

Quirks (counter resets, missing load average, unreadable mounts) are faked by
replacing single psutil functions, so everything else stays real.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import psutil
import pytest

from backend.collector.sampler import Sampler
from backend.domain.metrics import METRICS, Sample

_T = TypeVar("_T")

RATE_METRICS = {name for name, spec in METRICS.items() if spec.kind == "rate"}


def values(samples: list[Sample], metric: str) -> dict[tuple[tuple[str, str], ...], float]:
    return {tuple(sorted(s.labels.items())): s.value for s in samples if s.metric == metric}


def total(samples: list[Sample], metric: str) -> float:
    (value,) = [s.value for s in samples if s.metric == metric and not s.labels]
    return value


def test_first_sample_has_plausible_gauges_and_no_rates() -> None:
    samples = Sampler().sample(time.monotonic())

    assert 0.0 <= total(samples, "cpu.percent") <= 100.0
    cores = values(samples, "cpu.core.percent")
    assert len(cores) == psutil.cpu_count()
    assert all(0.0 <= v <= 100.0 for v in cores.values())
    assert 0.0 <= total(samples, "mem.used_percent") <= 100.0
    memory_total = psutil.virtual_memory().total
    assert 0 < total(samples, "mem.used_bytes") <= memory_total
    assert 0 < total(samples, "mem.available_bytes") <= memory_total
    assert all(s.value >= 0.0 for s in samples if s.metric.startswith("load."))
    disks = values(samples, "disk.used_percent")
    assert all(0.0 <= v <= 100.0 for v in disks.values())
    assert not [s for s in samples if s.metric in RATE_METRICS]


def test_second_sample_has_non_negative_disk_and_network_rates() -> None:
    sampler = Sampler()
    sampler.sample(time.monotonic())
    time.sleep(0.2)
    samples = sampler.sample(time.monotonic())

    rates = [s for s in samples if s.metric in RATE_METRICS]
    assert all(s.value >= 0.0 for s in rates)
    emitted = {s.metric for s in rates}
    if psutil.disk_io_counters() is not None:
        assert {"disk.read_bytes_per_s", "disk.write_bytes_per_s"} <= emitted
    assert {"net.rx_bytes_per_s", "net.tx_bytes_per_s"} <= emitted
    nics = {s.labels["nic"] for s in rates if "nic" in s.labels}
    assert "lo" not in nics


def test_every_emitted_metric_is_declared() -> None:
    sampler = Sampler()
    samples = sampler.sample(time.monotonic())
    time.sleep(0.05)
    samples += sampler.sample(time.monotonic())

    assert {s.metric for s in samples} <= METRICS.keys()


def test_samples_are_cheap_enough_to_take_every_second() -> None:
    # Budget: 0.5 % of a core at 1 Hz is 5 ms of CPU time per sample.
    sampler = Sampler()
    start = time.process_time()
    for tick in range(50):
        sampler.sample(float(tick))
    assert (time.process_time() - start) / 50 < 0.005


# Counters: replace psutil's sources with scripted readings.


@dataclass(frozen=True)
class DiskIO:
    """The fields of psutil's sdiskio that the sampler reads."""

    read_bytes: int
    write_bytes: int


@dataclass(frozen=True)
class NicIO:
    bytes_recv: int
    bytes_sent: int


def script(readings: list[_T]) -> Callable[..., _T]:
    remaining = iter(readings)
    return lambda *_args, **_kwargs: next(remaining)


def test_rates_are_counter_deltas_over_elapsed_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        psutil, "disk_io_counters", script([DiskIO(1_000, 5_000), DiskIO(3_000, 5_000)])
    )
    monkeypatch.setattr(
        psutil,
        "net_io_counters",
        script(
            [
                {"eth0": NicIO(100, 10), "lo": NicIO(0, 0)},
                {"eth0": NicIO(500, 30), "lo": NicIO(10**9, 10**9), "veth1": NicIO(10**9, 10**9)},
            ]
        ),
    )
    sampler = Sampler()
    assert not [s for s in sampler.sample(100.0) if s.metric in RATE_METRICS]
    samples = sampler.sample(102.0)

    assert total(samples, "disk.read_bytes_per_s") == 1_000.0
    assert total(samples, "disk.write_bytes_per_s") == 0.0
    assert values(samples, "net.rx_bytes_per_s") == {(): 200.0, (("nic", "eth0"),): 200.0}
    assert values(samples, "net.tx_bytes_per_s") == {(): 10.0, (("nic", "eth0"),): 10.0}


def test_counters_going_backwards_give_no_sample(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        psutil, "disk_io_counters", script([DiskIO(9_000, 1_000), DiskIO(10, 2_000)])
    )
    monkeypatch.setattr(
        psutil,
        "net_io_counters",
        script(
            [
                {"eth0": NicIO(9_000, 10), "eth1": NicIO(100, 100)},
                {"eth0": NicIO(10, 20), "eth1": NicIO(300, 50)},
            ]
        ),
    )
    sampler = Sampler()
    sampler.sample(100.0)
    samples = sampler.sample(101.0)

    assert all(s.value >= 0.0 for s in samples)
    assert values(samples, "disk.read_bytes_per_s") == {}
    assert total(samples, "disk.write_bytes_per_s") == 1_000.0
    # A reset on one interface hides the total (it would undercount) but not
    # the interfaces whose counters are sound.
    assert values(samples, "net.rx_bytes_per_s") == {(("nic", "eth1"),): 200.0}
    assert values(samples, "net.tx_bytes_per_s") == {(("nic", "eth0"),): 10.0}


def test_a_clock_going_backwards_gives_no_rates() -> None:
    sampler = Sampler()
    sampler.sample(100.0)
    samples = sampler.sample(99.0)

    assert not [s for s in samples if s.metric in RATE_METRICS]
    assert {"cpu.percent", "mem.used_percent"} <= {s.metric for s in samples}


# Missing OS features: left out, never a crash.


@pytest.mark.parametrize("error", [AttributeError, OSError, NotImplementedError])
def test_missing_load_average_is_left_out(
    monkeypatch: pytest.MonkeyPatch, error: type[Exception]
) -> None:
    def unavailable() -> tuple[float, float, float]:
        raise error("no load average here")

    monkeypatch.setattr(psutil, "getloadavg", unavailable)
    samples = Sampler().sample(time.monotonic())

    assert not [s for s in samples if s.metric.startswith("load.")]
    assert "cpu.percent" in {s.metric for s in samples}


def test_psutil_without_getloadavg_is_tolerated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(psutil, "getloadavg")
    samples = Sampler().sample(time.monotonic())

    assert not [s for s in samples if s.metric.startswith("load.")]


@dataclass(frozen=True)
class Swap:
    total: int
    percent: float


def test_missing_swap_and_disk_counters_are_left_out(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(psutil, "swap_memory", lambda: Swap(total=0, percent=0.0))
    monkeypatch.setattr(psutil, "disk_io_counters", lambda **_kwargs: None)

    def no_proc_net_dev(**_kwargs: object) -> dict[str, NicIO]:
        raise FileNotFoundError("/proc/net/dev")

    monkeypatch.setattr(psutil, "net_io_counters", no_proc_net_dev)
    sampler = Sampler()
    sampler.sample(100.0)
    samples = sampler.sample(101.0)

    metrics = {s.metric for s in samples}
    assert not metrics & ({"swap.used_percent"} | RATE_METRICS)
    assert "mem.used_percent" in metrics


# Mount points: physical only, deduplicated, unreadable ones skipped, listed rarely.


@dataclass(frozen=True)
class Partition:
    mountpoint: str


def test_mount_points_are_deduplicated_and_unreadable_ones_skipped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    listed: list[bool] = []

    def partitions(all: bool = False) -> list[Partition]:
        listed.append(all)
        return [Partition("/"), Partition("/secret"), Partition("/"), Partition("/gone")]

    real_usage = psutil.disk_usage

    def usage(path: str) -> object:
        if path == "/secret":
            raise PermissionError(path)
        if path == "/gone":
            raise FileNotFoundError(path)
        return real_usage(path)

    monkeypatch.setattr(psutil, "disk_partitions", partitions)
    monkeypatch.setattr(psutil, "disk_usage", usage)
    sampler = Sampler(mounts_ttl=60.0)
    samples = sampler.sample(100.0)

    assert list(values(samples, "disk.used_percent")) == [(("mount", "/"),)]
    assert listed == [False]
    sampler.sample(159.0)
    assert listed == [False]
    sampler.sample(160.0)
    assert listed == [False, False]

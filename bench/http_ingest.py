"""`python -m bench ingest --http`: metric points per second through `POST /api/v1/metrics`.

A real server process (`quarterdeck serve`, `--workers N`) per back end:
SQLite with the memory bus, and PostgreSQL with Redis (a scratch database
and a Redis key prefix of the bench's own, both removed afterwards;
QUARTERDECK_BENCH_POSTGRES and QUARTERDECK_BENCH_REDIS name the servers).
An admin is created with the CLI; over HTTP it signs in and creates one API
key with the `metrics:write` scope per pusher, as an operator would per agent.

Each pusher stands for an agent that buffered a while: it has its own hosts
(`--hosts` of them, 10 series each) and sends batches of `--batch` points
covering the next few seconds of its timeline (5,000 points = 50 hosts x 10
series x 10 s), one POST at a time, the next as soon as the last was
answered; `--pushers` of them run at once. The request bodies are built as
text from fragments made once, so the generator spends little CPU.

A warm-up run registers every host and series and is left out; then
`--runs` runs of `--seconds` each. Points/s counts the points the server
accepted (its `accepted` answer) over the run's wall time. The figures are
the medians over the runs, with the server's CPU (its process tree, in
cores), the generator's, and what other processes used meanwhile.

The per-key request budget (`api.requests_per_minute`) stays at its default:
one POST per batch is far below it, and every POST pays its charge as in
production.

Target: at least 150,000 points/s with one server instance. The exit status
is 1 when a back end misses it, 2 when the bench could not run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.server import (
    DEFAULT_POSTGRES,
    DEFAULT_REDIS,
    CpuMeter,
    Server,
    http,
    machine_busy,
    note_other_load,
    self_cpu,
    server,
    show_problems,
    sign_in,
    storage,
    storage_label,
)

TARGET = 150_000.0
"""Points per second."""
SERIES: tuple[tuple[str, str], ...] = (
    ("cpu.percent", "{}"),
    ("load.1", "{}"),
    ("mem.used_percent", "{}"),
    ("mem.used_bytes", "{}"),
    ("swap.used_percent", "{}"),
    ("net.rx_bytes_per_s", "{}"),
    ("net.tx_bytes_per_s", "{}"),
    ("cpu.core.percent", '{"core":"0"}'),
    ("cpu.core.percent", '{"core":"1"}'),
    ("cpu.core.percent", '{"core":"2"}'),
)
"""(metric, labels as JSON): the series every host reports."""
HISTORY = 6 * 3600.0
"""Seconds before now where the pushers' timelines start (well inside raw retention)."""
BACKENDS = ("sqlite", "postgres")


# -- the pushers ----------------------------------------------------------------------


@dataclass(frozen=True)
class PushSpec:
    url: str
    hosts: int
    batch: int
    seconds_per_batch: int

    @property
    def points_per_second(self) -> int:
        return self.hosts * len(SERIES)


class Pusher:
    """One agent: its hosts, its key, and the next stretch of its timeline."""

    def __init__(self, index: int, key: str, spec: PushSpec, start: float) -> None:
        self.key = key
        self.spec = spec
        self.next_ts = start
        rng = random.Random(index)
        # Everything of a point but its timestamp, made once.
        self._fragments = [
            f'{{"host":"agent{index:02d}-node{host:03d}","metric":"{metric}",'
            f'"labels":{labels},"value":{rng.uniform(0, 100):.3f},"ts":'
            for host in range(spec.hosts)
            for metric, labels in SERIES
        ]

    def body(self) -> tuple[bytes, int]:
        """The next batch as JSON, and how many points it holds."""
        parts: list[str] = []
        left = self.spec.batch
        for _ in range(self.spec.seconds_per_batch):
            ts = f"{self.next_ts:.0f}}}"
            take = self._fragments[:left]
            parts.extend(fragment + ts for fragment in take)
            left -= len(take)
            self.next_ts += 1
        text = '{"points":[' + ",".join(parts) + "]}"
        return text.encode(), len(parts)


@dataclass
class Pushed:
    points: int = 0
    posts: int = 0
    seconds: list[float] = field(default_factory=list)
    """Each POST's round trip."""
    failures: dict[str, int] = field(default_factory=dict)
    elapsed: float = 0.0


async def _push(pushers: list[Pusher], seconds: float) -> Pushed:
    """Every pusher sends batch after batch until `seconds` have passed."""
    import httpx

    pushed = Pushed()
    loop = asyncio.get_running_loop()
    started = loop.time()
    deadline = started + seconds

    async def run(pusher: Pusher) -> None:
        headers = {
            "Authorization": f"Bearer {pusher.key}",
            "Content-Type": "application/json",
        }
        client = httpx.AsyncClient(base_url=pusher.spec.url, headers=headers, timeout=120.0)
        async with client:
            while loop.time() < deadline:
                body, count = pusher.body()
                sent = loop.time()
                response = await client.post("/api/v1/metrics", content=body)
                answered = loop.time()
                if response.status_code != 200:
                    reason = f"{response.status_code} {response.text[:120]}"
                    pushed.failures[reason] = pushed.failures.get(reason, 0) + 1
                    continue
                accepted = int(response.json()["accepted"])
                if accepted != count:
                    reason = f"accepted {accepted} of {count}"
                    pushed.failures[reason] = pushed.failures.get(reason, 0) + 1
                pushed.points += accepted
                pushed.posts += 1
                pushed.seconds.append(answered - sent)

    await asyncio.gather(*(run(pusher) for pusher in pushers))
    pushed.elapsed = loop.time() - started
    return pushed


# -- the runs ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Figures:
    rate: float
    """Points accepted per second."""
    posts: int
    failures: dict[str, int]
    p50: float
    p99: float
    """POST round trips, seconds."""
    server_cpu: float
    generator_cpu: float
    other_cpu: float
    """Cores."""


def _percentile(values: list[float], share: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def _measure(pushers: list[Pusher], seconds: float, meter: CpuMeter) -> Figures:
    server_before, own_before, busy_before = meter.seconds(), self_cpu(), machine_busy()
    started = time.monotonic()
    pushed = asyncio.run(_push(pushers, seconds))
    elapsed = time.monotonic() - started
    server_cpu, own_cpu = meter.seconds() - server_before, self_cpu() - own_before
    busy = machine_busy() - busy_before
    return Figures(
        rate=pushed.points / pushed.elapsed if pushed.elapsed else 0.0,
        posts=pushed.posts,
        failures=pushed.failures,
        p50=_percentile(pushed.seconds, 0.5),
        p99=_percentile(pushed.seconds, 0.99),
        server_cpu=server_cpu / elapsed,
        generator_cpu=own_cpu / elapsed,
        other_cpu=max(0.0, busy - server_cpu - own_cpu) / elapsed,
    )


def _run(
    args: argparse.Namespace, running: Server, env: dict[str, str], label: str, *, services: bool
) -> float:
    token, _ = sign_in(running.url, env, ["metrics:write"])
    spec = PushSpec(running.url, args.hosts, args.batch, -(-args.batch // (args.hosts * 10)))
    start = time.time() - HISTORY
    pushers = []
    for index in range(args.pushers):
        key = http(
            running.url,
            "POST",
            "/api/v1/api-keys",
            {"name": f"agent-{index}", "scopes": ["metrics:write"]},
            token,
        )
        pushers.append(Pusher(index, key["secret"], spec, start))
    print(
        f"\n{label}: server {running.url}; {args.pushers} pushers x {args.hosts} hosts x "
        f"{len(SERIES)} series, {args.batch} points per POST"
    )
    meter = CpuMeter(running.pid)
    if args.warmup > 0:
        warm = _measure(pushers, args.warmup, meter)
        if warm.failures:
            raise RuntimeError(f"the warm-up failed: {warm.failures}")
    runs: list[Figures] = []
    for n in range(args.runs):
        figures = _measure(pushers, args.seconds, meter)
        runs.append(figures)
        print(
            f"  run {n + 1}: {figures.rate:9.0f} points/s  {figures.posts} POSTs  "
            f"p50 {figures.p50 * 1000:6.1f}  p99 {figures.p99 * 1000:6.1f} ms  "
            f"CPU (cores): server {figures.server_cpu:.2f}  generator "
            f"{figures.generator_cpu:.2f}  other {figures.other_cpu:.2f}"
            + (f"  FAILED {figures.failures}" if figures.failures else "")
        )
    rate = statistics.median(run.rate for run in runs)
    cpu = statistics.median(run.server_cpu for run in runs)
    other = max(run.other_cpu for run in runs)
    failed = sum(sum(run.failures.values()) for run in runs)
    print(
        f"median of {len(runs)}: {rate:.0f} points/s, POST p50 "
        f"{statistics.median(run.p50 for run in runs) * 1000:.1f} ms, p99 "
        f"{statistics.median(run.p99 for run in runs) * 1000:.1f} ms; server {cpu:.2f} cores "
        f"({cpu / max(rate, 1) * 1e6:.2f} CPU-us per point); {failed} failed POSTs"
    )
    note_other_load(other, services=services)
    return rate if failed == 0 else 0.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench ingest --http", description=__doc__)
    parser.add_argument("--http", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--backend", choices=[*BACKENDS, "both"], default="both")
    parser.add_argument("--pushers", type=int, default=4, help="concurrent agents")
    parser.add_argument("--hosts", type=int, default=50, help="hosts per pusher")
    parser.add_argument("--batch", type=int, default=5000, help="points per POST")
    parser.add_argument("--seconds", type=float, default=15.0, help="per measured run")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds, not measured")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workers", type=int, default=1, help="server worker processes")
    parser.add_argument("--profile", type=Path, help="write a pyinstrument profile of the server")
    args = parser.parse_args(argv)
    if min(args.pushers, args.hosts, args.batch, args.runs, args.workers) < 1:
        parser.error("--pushers, --hosts, --batch, --runs and --workers must be at least 1")
    if args.batch > 50_000:
        parser.error("--batch is at most 50000 (the server's limit)")
    backends = list(BACKENDS) if args.backend == "both" else [args.backend]
    postgres = os.environ.get("QUARTERDECK_BENCH_POSTGRES", DEFAULT_POSTGRES)
    redis = os.environ.get("QUARTERDECK_BENCH_REDIS", DEFAULT_REDIS)
    missed = False
    for backend in backends:
        pg, rd = (postgres, redis) if backend == "postgres" else (None, None)
        label = storage_label(pg, rd, args.workers)
        profile = args.profile
        if profile is not None and len(backends) > 1:
            profile = profile.with_name(f"{profile.stem}-{backend}{profile.suffix}")
        with tempfile.TemporaryDirectory(prefix="qd-bench-ingest-") as name:
            tmp = Path(name)
            log_path = tmp / "server.log"
            try:
                with (
                    storage(pg, rd, tmp / "data") as env,
                    server(env, log_path, workers=args.workers, profile=profile) as running,
                ):
                    rate = _run(args, running, env, label, services=pg is not None)
            except (RuntimeError, subprocess.CalledProcessError, OSError) as error:
                print(f"bench ingest --http: {error}", file=sys.stderr)
                if isinstance(error, subprocess.CalledProcessError):
                    print(error.stdout, error.stderr, file=sys.stderr)
                if log_path.exists():
                    sys.stderr.write(log_path.read_text(errors="replace")[-5000:])
                return 2
            show_problems(log_path)
        if profile is not None:
            print(f"server profile: {profile}")
        ok = rate >= TARGET
        missed = missed or not ok
        print(f"target: >= {TARGET:.0f} points/s: {'OK' if ok else 'MISSED'} ({label})")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())

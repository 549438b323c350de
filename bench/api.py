"""`python -m bench api`: authenticated `GET /api/v1/hosts` throughput and latency.

A real server process (`quarterdeck serve`, `--workers N`) on SQLite and the
memory bus, or with `--postgres` and `--redis` on a scratch PostgreSQL
database and a Redis key prefix of its own. Before it starts, the run-time
setting `api.requests_per_minute` is set with `quarterdeck settings import`:
to 0 (unlimited) by default, so the per-user request budget does not cap the
figures and no request is charged to the limiter; `--requests-per-minute
1000000` keeps a budget the load cannot exhaust, so every request pays its
charge (one limiter round trip on Redis) without being refused. An admin is created
with the CLI; over HTTP it signs in, creates an API key and pushes a few
points for `--hosts` hosts, so the listing has rows to return.

The load comes from `wrk` (Debian package `wrk`) when it is installed: 50
connections on loopback, each sending the next request as soon as the last
response arrived, with the access token (or, with `--credential api-key`, the
API key) in the Authorization header. A warm-up run is left out, then
`--runs` runs of `--seconds` each; the figures are the medians over the
runs. Without wrk an asyncio load generator in this process takes its place;
when it needs most of a core, its own speed limits the figures, and the
run says so.

The server's CPU is its whole process tree's (every worker) user and system
time over a run, in cores (1.00 = one core busy); the generator's own CPU is
shown next to it, since both share the machine.

Targets: at least 3,000 requests/s with p99 latency under 50 ms (medians).
The exit status is 1 when a target is missed, so the command can gate a CI
job; 2 when the bench could not run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench.server import (
    DEFAULT_POSTGRES,
    DEFAULT_REDIS,
    CpuMeter,
    Server,
    children_cpu,
    http,
    import_settings,
    machine_busy,
    note_other_load,
    self_cpu,
    server,
    show_problems,
    sign_in,
    storage,
    storage_label,
)

TARGET_RPS = 3000.0
TARGET_P99 = 0.050
"""Seconds."""
BUDGET_SETTING = "api.requests_per_minute"
HOST_SERIES = ("cpu.percent", "load.1", "mem.used_percent")
GENERATOR_BOUND = 0.8
"""Cores the in-process generator may use before its own speed limits the figures."""


# -- the load --------------------------------------------------------------------------

_WRK_SCRIPT = """
wrk.headers["Authorization"] = "Bearer %(token)s"
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCH-JSON {\\"requests\\": %%d, \\"duration_us\\": %%d, \\"connect\\": %%d, "
    .. "\\"read\\": %%d, \\"write\\": %%d, \\"status\\": %%d, \\"timeout\\": %%d, "
    .. "\\"p50_us\\": %%d, \\"p90_us\\": %%d, \\"p99_us\\": %%d, \\"max_us\\": %%d}\\n",
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
"""


@dataclass(frozen=True)
class Figures:
    requests: int
    seconds: float
    errors: int
    """Non-2xx responses, socket errors and timeouts."""
    p50: float
    p90: float
    p99: float
    worst: float
    """Latencies in seconds."""
    server_cpu: float
    """Cores: the server's CPU seconds per second of the run."""
    generator_cpu: float
    other_cpu: float
    """Cores busy with neither: other processes on the machine (they skew the figures)."""

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


@dataclass(frozen=True)
class LoadSpec:
    url: str
    token: str
    connections: int
    threads: int


def _wrk(spec: LoadSpec, seconds: float, script: Path, meter: CpuMeter) -> Figures:
    command = [
        "wrk",
        f"-t{spec.threads}",
        f"-c{spec.connections}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        "10s",
        "-s",
        str(script),
        spec.url,
    ]
    server_before, wrk_before, busy_before = meter.seconds(), children_cpu(), machine_busy()
    started = time.monotonic()
    done = subprocess.run(command, text=True, capture_output=True, check=True)
    elapsed = time.monotonic() - started
    server_cpu, generator_cpu = meter.seconds() - server_before, children_cpu() - wrk_before
    busy = machine_busy() - busy_before
    found = re.search(r"^BENCH-JSON (.*)$", done.stdout, re.MULTILINE)
    if found is None:
        raise RuntimeError(f"wrk printed no figures:\n{done.stdout}\n{done.stderr}")
    raw = json.loads(found.group(1))
    duration = raw["duration_us"] / 1e6
    errors = sum(raw[name] for name in ("connect", "read", "write", "status", "timeout"))
    return Figures(
        requests=raw["requests"],
        seconds=duration,
        errors=errors,
        p50=raw["p50_us"] / 1e6,
        p90=raw["p90_us"] / 1e6,
        p99=raw["p99_us"] / 1e6,
        worst=raw["max_us"] / 1e6,
        server_cpu=server_cpu / elapsed,
        generator_cpu=generator_cpu / elapsed,
        other_cpu=max(0.0, busy - server_cpu - generator_cpu) / elapsed,
    )


async def _python_load(spec: LoadSpec, seconds: float) -> tuple[int, int, list[float], float]:
    """HTTP/1.1 keep-alive GETs on `connections` sockets: (ok, errors, latencies, elapsed)."""
    from urllib.parse import urlsplit

    parts = urlsplit(spec.url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    request = (
        f"GET {target} HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"Authorization: Bearer {spec.token}\r\n\r\n"
    ).encode()
    latencies: list[float] = []
    counts = {"ok": 0, "errors": 0}
    clock = time.perf_counter  # uvloop's loop.time() only has millisecond resolution
    deadline = clock() + seconds

    async def connection() -> None:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while clock() < deadline:
                sent = clock()
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                status = int(head.split(b" ", 2)[1])
                length = 0
                for line in head.split(b"\r\n"):
                    if line[:15].lower() == b"content-length:":
                        length = int(line[15:])
                await reader.readexactly(length)
                latencies.append(clock() - sent)
                counts["ok" if 200 <= status < 300 else "errors"] += 1
        finally:
            writer.close()

    started = clock()
    outcomes = await asyncio.gather(
        *(connection() for _ in range(spec.connections)), return_exceptions=True
    )
    counts["errors"] += sum(1 for outcome in outcomes if isinstance(outcome, BaseException))
    return counts["ok"], counts["errors"], latencies, clock() - started


def _python(spec: LoadSpec, seconds: float, meter: CpuMeter) -> Figures:
    server_before, own_before, busy_before = meter.seconds(), self_cpu(), machine_busy()
    started = time.monotonic()
    try:
        import uvloop

        runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)
    except ImportError:
        runner = asyncio.Runner()
    with runner:
        ok, errors, latencies, duration = runner.run(_python_load(spec, seconds))
    elapsed = time.monotonic() - started
    server_cpu, generator_cpu = meter.seconds() - server_before, self_cpu() - own_before
    busy = machine_busy() - busy_before
    latencies.sort()

    def at(share: float) -> float:
        return latencies[min(len(latencies) - 1, int(share * len(latencies)))] if latencies else 0

    return Figures(
        requests=ok + errors,
        seconds=duration,
        errors=errors,
        p50=at(0.5),
        p90=at(0.9),
        p99=at(0.99),
        worst=latencies[-1] if latencies else 0.0,
        server_cpu=server_cpu / elapsed,
        generator_cpu=generator_cpu / elapsed,
        other_cpu=max(0.0, busy - server_cpu - generator_cpu) / elapsed,
    )


# -- the run ---------------------------------------------------------------------------


def _seed(url: str, key: str, hosts: int) -> None:
    """A few points for each of `hosts` hosts, so the listing returns `hosts` rows."""
    now = time.time()
    points = [
        {"host": f"bench-{h:03d}", "metric": metric, "ts": now, "value": float(h)}
        for h in range(hosts)
        for metric in HOST_SERIES
    ]
    http(url, "POST", "/api/v1/metrics", {"points": points}, key)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench api", description=__doc__)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=15.0, help="per measured run")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds, not measured")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workers", type=int, default=1, help="server worker processes")
    parser.add_argument("--hosts", type=int, default=20, help="hosts in the listing")
    parser.add_argument("--path", default="/api/v1/hosts", help="the GET to load")
    parser.add_argument(
        "--credential",
        choices=["access-token", "api-key"],
        default="access-token",
        help="what the Authorization header carries",
    )
    parser.add_argument(
        "--generator",
        choices=["auto", "wrk", "python"],
        default="auto",
        help="wrk when installed (auto), or the in-process asyncio generator",
    )
    parser.add_argument("--threads", type=int, default=1, help="wrk threads")
    parser.add_argument(
        "--requests-per-minute",
        type=int,
        default=0,
        help="the per-user budget for the run (default 0: unlimited, nothing charged)",
    )
    parser.add_argument(
        "--postgres", nargs="?", const=DEFAULT_POSTGRES, help="admin URL for a scratch database"
    )
    parser.add_argument("--redis", nargs="?", const=DEFAULT_REDIS, help="Redis URL")
    parser.add_argument("--profile", type=Path, help="write a pyinstrument profile of the server")
    args = parser.parse_args(argv)
    if args.runs < 1 or args.connections < 1 or args.workers < 1:
        parser.error("--runs, --connections and --workers must be at least 1")
    generator = args.generator
    if generator == "auto":
        generator = "wrk" if shutil.which("wrk") else "python"
    elif generator == "wrk" and not shutil.which("wrk"):
        parser.error("wrk is not installed (Debian: apt-get install wrk)")

    with tempfile.TemporaryDirectory(prefix="qd-bench-api-") as name:
        tmp = Path(name)
        log_path = tmp / "server.log"
        try:
            with storage(args.postgres, args.redis, tmp / "data") as env:
                import_settings(env, {BUDGET_SETTING: args.requests_per_minute}, tmp)
                with server(env, log_path, workers=args.workers, profile=args.profile) as running:
                    status = _run(args, generator, running, env, tmp)
        except (RuntimeError, subprocess.CalledProcessError, OSError) as error:
            print(f"bench api: {error}", file=sys.stderr)
            if isinstance(error, subprocess.CalledProcessError):
                print(error.stdout, error.stderr, file=sys.stderr)
            if log_path.exists():
                sys.stderr.write(log_path.read_text(errors="replace")[-5000:])
            return 2
        show_problems(log_path)
        if args.profile is not None:
            print(f"server profile: {args.profile}")
        return status


def _run(
    args: argparse.Namespace, generator: str, running: Server, env: dict[str, str], tmp: Path
) -> int:
    token, key = sign_in(running.url, env, ["metrics:write", "hosts:read"])
    _seed(running.url, key, args.hosts)
    credential = token if args.credential == "access-token" else key
    listed = http(running.url, "GET", args.path, token=credential)
    rows = len(listed) if isinstance(listed, list) else 1
    limit = f"{BUDGET_SETTING}={args.requests_per_minute}"
    print(
        f"server {running.url} ({storage_label(args.postgres, args.redis, args.workers)}, "
        f"{limit}); GET {args.path} ({rows} rows) with an {args.credential}; "
        f"{args.connections} connections, {generator} generator"
    )
    spec = LoadSpec(running.url + args.path, credential, args.connections, args.threads)
    meter = CpuMeter(running.pid)
    script = tmp / "bench.lua"
    script.write_text(_WRK_SCRIPT % {"token": credential})

    def once(seconds: float) -> Figures:
        if generator == "wrk":
            return _wrk(spec, seconds, script, meter)
        return _python(spec, seconds, meter)

    if args.warmup > 0:
        once(args.warmup)
    runs: list[Figures] = []
    for n in range(args.runs):
        figures = once(args.seconds)
        runs.append(figures)
        print(
            f"  run {n + 1}: {figures.rate:8.0f} req/s  p50 {figures.p50 * 1000:6.2f}  "
            f"p90 {figures.p90 * 1000:6.2f}  p99 {figures.p99 * 1000:6.2f}  "
            f"max {figures.worst * 1000:7.2f} ms  errors {figures.errors}  "
            f"CPU (cores): server {figures.server_cpu:.2f}  {generator} "
            f"{figures.generator_cpu:.2f}  other {figures.other_cpu:.2f}"
        )
    rate = statistics.median(run.rate for run in runs)
    p50 = statistics.median(run.p50 for run in runs)
    p99 = statistics.median(run.p99 for run in runs)
    cpu = statistics.median(run.server_cpu for run in runs)
    load_cpu = statistics.median(run.generator_cpu for run in runs)
    other = max(run.other_cpu for run in runs)
    errors = sum(run.errors for run in runs)
    print(
        f"median of {len(runs)}: {rate:.0f} req/s, p50 {p50 * 1000:.2f} ms, "
        f"p99 {p99 * 1000:.2f} ms, {errors} errors; server {cpu:.2f} cores "
        f"({cpu / max(rate, 1) * 1e6:.0f} CPU-us per request), {generator} {load_cpu:.2f} cores "
        f"of {os.cpu_count()}"
    )
    note_other_load(other, services=bool(args.postgres or args.redis))
    if generator == "python" and load_cpu > GENERATOR_BOUND:
        print(
            f"note: the asyncio generator kept {load_cpu:.2f} cores busy, as much as one "
            "Python process can: these figures are generator-bound (install wrk)"
        )
    ok = rate >= TARGET_RPS and p99 < TARGET_P99 and errors == 0
    print(
        f"target: >= {TARGET_RPS:.0f} req/s and p99 < {TARGET_P99 * 1000:.0f} ms, no errors: "
        f"{'OK' if ok else 'MISSED'}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

"""`python -m bench agent`: the agent's own CPU and memory while pushing every second.

The agent runs on every node, so what it costs is paid many times over. This
starts a receiving server and the agent as separate processes, as in
production (`python -m backend.collector.agent`, the same code as
`quarterdeck agent`), lets the agent sample and push at its interval, and
measures only the agent's process tree: CPU as a percentage of one core over
the measured window (start-up excluded: it is paid once, not every second) and
resident memory (at the end, and the peak seen once a second).

Targets: at most 0.5 % of one core and 40 MB. The exit status is 1 when a
target is missed, so the command can gate a CI job.

The default receiver is a minimal Starlette app that accepts and counts
points; the agent cannot tell it from the product server, and its own cost is
not measured. `--server URL --api-key KEY` pushes to a running product server
instead.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import psutil

CPU_TARGET = 0.5
"""Percent of one core."""
RSS_TARGET = 40 * 1024 * 1024
WARMUP = 5.0
"""Seconds after start before measuring: imports, the first connection, the first samples."""
BENCH_KEY = "qdk_bench_agent"


def serve_receiver(port: int) -> None:
    """The receiving server's process: accept every batch, count what arrived."""
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    stats = {"requests": 0, "points": 0, "refused": 0}

    async def metrics(request: Request) -> JSONResponse:
        if request.headers.get("authorization") != f"Bearer {BENCH_KEY}":
            stats["refused"] += 1
            return JSONResponse({"error": {"code": "unauthenticated"}}, status_code=401)
        points = json.loads(await request.body())["points"]
        stats["requests"] += 1
        stats["points"] += len(points)
        return JSONResponse({"accepted": len(points), "series": len(points)})

    async def report(_request: Request) -> JSONResponse:
        return JSONResponse(stats)

    app = Starlette(
        routes=[
            Route("/api/v1/metrics", metrics, methods=["POST"]),
            Route("/stats", report, methods=["GET"]),
        ]
    )
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_for_port(port: int, process: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("the receiving server exited at start")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("the receiving server did not start")


def _tree(process: psutil.Process) -> list[psutil.Process]:
    return [process, *process.children(recursive=True)]


def _cpu_seconds(process: psutil.Process) -> float:
    """User + system time of the process, its live children and its reaped children."""
    total = 0.0
    for member in _tree(process):
        try:
            times = member.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
        if member is process:
            total += times.children_user + times.children_system
    return total


def _rss(process: psutil.Process) -> int:
    total = 0
    for member in _tree(process):
        try:
            total += member.memory_info().rss
        except psutil.NoSuchProcess:
            continue
    return total


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@dataclass(frozen=True)
class Measurement:
    cpu_seconds: float
    wall_seconds: float
    start_rss: int
    end_rss: int
    peak_rss: int


def _measure(agent: subprocess.Popen[bytes], seconds: float) -> Measurement:
    """Warm up, then CPU over `seconds` and RSS once a second, of the agent's tree."""
    watched = psutil.Process(agent.pid)
    time.sleep(WARMUP)
    _check_alive(agent, "at start")
    start_rss = peak_rss = _rss(watched)
    start_cpu, start_wall = _cpu_seconds(watched), time.monotonic()
    end_at = start_wall + seconds
    while (now := time.monotonic()) < end_at:
        time.sleep(min(1.0, end_at - now))
        peak_rss = max(peak_rss, _rss(watched))
    cpu, wall = _cpu_seconds(watched) - start_cpu, time.monotonic() - start_wall
    end_rss = _rss(watched)
    _check_alive(agent, "during the run")
    return Measurement(cpu, wall, start_rss, end_rss, max(peak_rss, end_rss))


def _check_alive(process: subprocess.Popen[bytes], when: str) -> None:
    if process.poll() is not None:
        raise RuntimeError(f"the agent exited {when}")


def _start_receiver() -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    receiver = subprocess.Popen(
        [sys.executable, "-c", f"import bench.agent as b; b.serve_receiver({port})"]
    )
    _wait_for_port(port, receiver)
    return receiver, f"http://127.0.0.1:{port}"


def _start_agent(url: str, key: str, interval: float, tmp: Path) -> subprocess.Popen[bytes]:
    with (tmp / "agent.log").open("wb") as log_file:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "backend.collector.agent",
                *("--server", url, "--interval", str(interval)),
                *("--queue", str(tmp / "queue.db"), "--host-name", "bench-agent"),
            ],
            env={**os.environ, "QUARTERDECK_AGENT_API_KEY": key},
            stdout=subprocess.DEVNULL,
            stderr=log_file,
        )


def _report(result: Measurement, interval: float, stats: dict[str, int] | None) -> bool:
    cpu_percent = 100.0 * result.cpu_seconds / result.wall_seconds
    cpu_ok, rss_ok = cpu_percent <= CPU_TARGET, result.peak_rss <= RSS_TARGET
    mib = 1024 * 1024
    per_interval = result.cpu_seconds * 1000 / (result.wall_seconds / interval)
    print(f"\nagent over {result.wall_seconds:.0f} s at a {interval:g} s interval")
    print(
        f"  CPU: {cpu_percent:.3f} % of one core ({result.cpu_seconds * 1000:.0f} ms in "
        f"{result.wall_seconds:.0f} s, {per_interval:.2f} ms per interval)  "
        f"target <= {CPU_TARGET} %  {'OK' if cpu_ok else 'MISSED'}"
    )
    print(
        f"  RSS: {result.end_rss / mib:.1f} MB at the end, peak {result.peak_rss / mib:.1f} MB "
        f"(after warm-up {result.start_rss / mib:.1f} MB)  "
        f"target <= {RSS_TARGET / mib:.0f} MB  {'OK' if rss_ok else 'MISSED'}"
    )
    if stats is not None:
        print(
            f"  receiver (warm-up included): {stats['requests']} requests, "
            f"{stats['points']} points, {stats['refused']} refused"
        )
    return cpu_ok and rss_ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench agent", description=__doc__)
    parser.add_argument("--seconds", type=float, default=120.0, help="measured time (default 120)")
    parser.add_argument("--interval", type=float, default=1.0, help="agent interval (default 1)")
    parser.add_argument("--server", help="push to this running server instead of a receiver")
    parser.add_argument("--api-key", help="API key for --server (metrics:write)")
    args = parser.parse_args(argv)
    if args.server and not args.api_key:
        parser.error("--server needs --api-key")

    with tempfile.TemporaryDirectory(prefix="qd-bench-agent-") as name:
        tmp = Path(name)
        receiver: subprocess.Popen[bytes] | None = None
        agent: subprocess.Popen[bytes] | None = None
        stats: dict[str, int] | None = None
        try:
            if args.server:
                url, key = args.server, args.api_key
            else:
                receiver, url = _start_receiver()
                key = BENCH_KEY
            agent = _start_agent(url, key, args.interval, tmp)
            print(f"agent pid {agent.pid} pushing to {url} every {args.interval:g} s")
            print(f"warming up {WARMUP:g} s, then measuring {args.seconds:g} s ...", flush=True)
            result = _measure(agent, args.seconds)
            if receiver is not None:
                with urllib.request.urlopen(f"{url}/stats", timeout=5) as response:
                    stats = json.loads(response.read())
        except RuntimeError as error:
            print(f"bench agent: {error}", file=sys.stderr)
            log_path = tmp / "agent.log"
            if log_path.exists():
                sys.stderr.write(log_path.read_text(encoding="utf-8", errors="replace"))
            return 2
        finally:
            for process in (agent, receiver):
                if process is not None:
                    _stop(process)
    return 0 if _report(result, args.interval, stats) else 1


if __name__ == "__main__":
    sys.exit(main())

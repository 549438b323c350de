"""`python -m bench fanout`: live metrics fan-out to many WebSocket clients under ingest load.

A real server process (`quarterdeck serve`) on SQLite and the memory bus, or
with `--postgres` and `--redis` on a scratch PostgreSQL database and a Redis
key prefix of its own. An admin is created with the CLI; over HTTP it signs
in and creates an API key with the `metrics:write` scope, as an agent's
operator would. Then:

- 100 WebSocket clients (in worker processes, so that reading them does not
  skew the producer's clock) subscribe to `metrics`;
- an agent-like producer pushes 10,000 points/s: 10 batches/s of 1,000
  points, one per series (50 hosts x 20 cores), each batch with its own
  timestamp, one POST at a time (`--concurrency` for more);
- the server coalesces (one `metrics` event per second carrying the newest
  point of each series) and fans each event out to every client.

Per event and client, the delivery latency is the receive time minus the
time the POST whose points the event carries was accepted (its response
received), matched on the timestamp (each batch has its own; an event must
carry every series). It splits into the coalescing
wait (accepted -> published, the event's `ts`) and the fan-out (published ->
received). Lost events: every client must receive every event published
while it was subscribed, which is also checked against the server's own
count of events sent.

Target: p99 delivery latency under 100 ms with no event lost. The exit
status is 1 when it is missed, so the command can gate a CI job.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from multiprocessing.synchronize import Event as MpEvent
from pathlib import Path
from typing import Any

from bench.server import (
    DEFAULT_POSTGRES,
    DEFAULT_REDIS,
    Server,
    server,
    show_problems,
    sign_in,
    storage,
    storage_label,
)

TARGET_P99 = 0.100
"""Seconds, ingest accepted -> event received."""
HOSTS, CORES = 50, 20
"""Series per batch: one `cpu.core.percent` per host and core."""
WARMUP = 3.0
"""Seconds of pushing left out of the figures: the first batches register hosts and series."""
SETTLE = 3.0
"""Seconds after the last push for the last coalesced event to be published and delivered."""
_EVENT_ID = re.compile(rb'"id":"([^"]+)"')


# -- the server ----------------------------------------------------------------


def _prometheus(url: str, name: str) -> float:
    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as response:
        text = response.read().decode()
    found = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


# -- the WebSocket clients (worker processes) ----------------------------------


@dataclass(frozen=True)
class ClientsSpec:
    url: str
    token: str
    count: int
    compression: str | None


def _client_worker(
    spec: ClientsSpec,
    ready: multiprocessing.SimpleQueue[Any],
    stop: MpEvent,
    results: multiprocessing.SimpleQueue[Any],
) -> None:
    """Runs the clients until `stop`; reports what each received and when."""
    try:
        import uvloop

        runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)
    except ImportError:
        runner = asyncio.Runner()
    with runner:
        results.put(runner.run(_clients(spec, ready, stop)))


async def _clients(
    spec: ClientsSpec, ready: multiprocessing.SimpleQueue[Any], stop: MpEvent
) -> dict[str, Any]:
    from websockets.asyncio.client import ClientConnection, connect
    from websockets.exceptions import ConnectionClosed

    count = spec.count
    received: list[list[tuple[str, float]]] = [[] for _ in range(count)]
    texts: dict[str, bytes] = {}
    """One copy of each event: all clients get the same text, parsed after the run."""
    closes: list[str] = []

    async def read(ws: ClientConnection, into: list[tuple[str, float]]) -> None:
        # Stamp first, parse nothing on the hot path: with tens of clients per
        # process, decoding each copy would delay the stamps of the next ones.
        with contextlib.suppress(ConnectionClosed):
            while True:
                raw = await ws.recv(decode=False)
                stamp = time.time()
                found = _EVENT_ID.search(raw, 0, 80)
                if found is None or not raw.startswith(b'{"id"'):
                    continue  # subscribed, heartbeat
                event_id = found.group(1).decode()
                into.append((event_id, stamp))
                if event_id not in texts:
                    texts[event_id] = raw
        if ws.close_code not in (None, 1000):
            closes.append(f"{ws.close_code} {ws.close_reason}")

    sockets: list[ClientConnection] = []
    try:
        for _ in range(count):
            ws = await connect(
                f"{spec.url.replace('http', 'ws', 1)}/api/v1/events?topics=metrics",
                additional_headers={"Authorization": f"Bearer {spec.token}"},
                compression=spec.compression,
                proxy=None,
                max_size=2**24,
                open_timeout=30,
            )
            sockets.append(ws)
            hello = json.loads(await ws.recv())
            assert hello["type"] == "subscribed", hello
        readers = [
            asyncio.create_task(read(ws, into)) for ws, into in zip(sockets, received, strict=True)
        ]
        ready.put(count)
        await asyncio.get_running_loop().run_in_executor(None, stop.wait)
    finally:
        for ws in sockets:
            await ws.close()
    await asyncio.gather(*readers)
    events: dict[str, dict[str, Any]] = {}
    for event_id, raw in texts.items():
        event = json.loads(raw)
        batches: dict[float, int] = {}
        for point in event["data"]["points"]:
            batches[point["ts"]] = batches.get(point["ts"], 0) + 1
        events[event_id] = {"published": event["ts"], "batches": list(batches.items())}
    return {"received": received, "events": events, "closes": closes}


# -- the producer ----------------------------------------------------------------


@dataclass
class Produced:
    accepted: dict[float, float] = field(default_factory=dict)
    """Batch timestamp -> wall time its POST was accepted."""
    post_seconds: list[float] = field(default_factory=list)
    started: float = 0.0
    elapsed: float = 0.0
    failures: dict[str, int] = field(default_factory=dict)
    """Error response (status and code) -> how many."""


@dataclass(frozen=True)
class Load:
    seconds: float
    rate: int
    """Points per second."""
    batch: int
    """Points per POST."""
    concurrency: int
    """POSTs in flight at most."""


async def _produce(url: str, key: str, load: Load) -> Produced:
    import httpx

    produced = Produced()
    interval = load.batch / load.rate
    series = [(f"node-{h:02d}", str(c)) for h in range(HOSTS) for c in range(CORES)][: load.batch]
    in_flight = asyncio.Semaphore(load.concurrency)
    loop = asyncio.get_running_loop()

    async def push(http: httpx.AsyncClient, ts: float, n: int) -> None:
        async with in_flight:
            points = [
                {
                    "host": host,
                    "metric": "cpu.core.percent",
                    "labels": {"core": core},
                    "ts": ts,
                    "value": float((n + i) % 100),
                }
                for i, (host, core) in enumerate(series)
            ]
            body = json.dumps({"points": points})
            sent = time.time()
            response = await http.post("/api/v1/metrics", content=body)
            accepted = time.time()
            if response.status_code != 200:
                try:
                    code = response.json()["error"]["code"]
                except (ValueError, KeyError, TypeError):
                    code = response.text[:80]
                reason = f"{response.status_code} {code}"
                produced.failures[reason] = produced.failures.get(reason, 0) + 1
                return
            produced.accepted[ts] = accepted
            produced.post_seconds.append(accepted - sent)

    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    limits = httpx.Limits(max_connections=load.concurrency)
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=30, limits=limits) as http:
        produced.started = time.time()
        start = loop.time()
        tasks = []
        for n in range(int(load.seconds / interval)):
            await asyncio.sleep(max(0.0, start + n * interval - loop.time()))
            ts = round(produced.started + n * interval, 3)
            tasks.append(asyncio.create_task(push(http, ts, n)))
        await asyncio.gather(*tasks)
        produced.elapsed = loop.time() - start
    return produced


# -- the figures -------------------------------------------------------------------


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def _line(name: str, values: list[float]) -> str:
    if not values:
        return f"  {name:<28} no samples"
    ms = [v * 1000 for v in values]
    return (
        f"  {name:<28} p50 {_percentile(ms, 0.5):7.1f}  p95 {_percentile(ms, 0.95):7.1f}  "
        f"p99 {_percentile(ms, 0.99):7.1f}  max {max(ms):7.1f} ms"
    )


@dataclass
class Outcome:
    total: list[float]
    coalescing: list[float]
    fanout: list[float]
    lost: int
    expected: int
    clients: int
    unmatched: int
    partial: int
    final_delivered: int


def _analyse(produced: Produced, reports: list[dict[str, Any]], series: int) -> Outcome:
    events: dict[str, dict[str, Any]] = {}
    for report in reports:
        events.update(report["events"])
    clients = [client for report in reports for client in report["received"]]
    measured_from = produced.started + WARMUP
    total: list[float] = []
    coalescing: list[float] = []
    fanout: list[float] = []
    unmatched = partial = 0
    for event in events.values():
        batches = event["batches"]
        if any(ts not in produced.accepted for ts, _ in batches):
            unmatched += 1
        if sum(n for _, n in batches) < series:
            partial += 1
    for client in clients:
        for event_id, received_at in client:
            event = events[event_id]
            # The POST that produced the event: the newest batch among its points.
            newest = max(ts for ts, _ in event["batches"])
            accepted = produced.accepted.get(newest)
            if accepted is None or accepted < measured_from:
                continue
            total.append(received_at - accepted)
            coalescing.append(event["published"] - accepted)
            fanout.append(received_at - event["published"])
    # Every client subscribed before the first push, so each must have them all.
    expected = set(events)
    lost = sum(len(expected - {event_id for event_id, _ in client}) for client in clients)
    last_batch = max(produced.accepted) if produced.accepted else None
    final_delivered = sum(
        1
        for client in clients
        if client and any(ts == last_batch for ts, _ in events[client[-1][0]]["batches"])
    )
    return Outcome(
        total,
        coalescing,
        fanout,
        lost,
        len(expected),
        len(clients),
        unmatched,
        partial,
        final_delivered,
    )


# -- the run ---------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench fanout", description=__doc__)
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--rate", type=int, default=10_000, help="points per second")
    parser.add_argument("--batch", type=int, default=1_000, help="points per POST (<= 1000)")
    parser.add_argument("--seconds", type=float, default=20.0, help="pushing time")
    parser.add_argument(
        "--concurrency", type=int, default=1, help="POSTs in flight (an agent sends one at a time)"
    )
    parser.add_argument("--workers", type=int, default=2, help="client processes")
    parser.add_argument(
        "--compression",
        choices=["none", "deflate"],
        default="none",
        help="permessage-deflate for the clients (default none)",
    )
    parser.add_argument(
        "--postgres", nargs="?", const=DEFAULT_POSTGRES, help="admin URL for a scratch database"
    )
    parser.add_argument("--redis", nargs="?", const=DEFAULT_REDIS, help="Redis URL")
    parser.add_argument("--profile", type=Path, help="write a pyinstrument profile of the server")
    args = parser.parse_args(argv)
    if not 0 < args.batch <= HOSTS * CORES:
        parser.error(f"--batch must be between 1 and {HOSTS * CORES}")

    with tempfile.TemporaryDirectory(prefix="qd-bench-fanout-") as name:
        tmp = Path(name)
        log_path = tmp / "server.log"
        try:
            with (
                storage(args.postgres, args.redis, tmp / "data") as env,
                server(env, log_path, profile=args.profile) as running,
            ):
                status = _run(args, running, env)
        except (RuntimeError, subprocess.CalledProcessError, OSError) as error:
            print(f"bench fanout: {error}", file=sys.stderr)
            if isinstance(error, subprocess.CalledProcessError):
                print(error.stderr, file=sys.stderr)
            if log_path.exists():
                sys.stderr.write(log_path.read_text(errors="replace")[-5000:])
            return 2
        show_problems(log_path)
        return status


def _run(args: argparse.Namespace, running: Server, env: dict[str, str]) -> int:
    import psutil

    url = running.url
    token, key = sign_in(url, env, ["metrics:write"])
    print(
        f"server {url} ({storage_label(args.postgres, args.redis, 1)}); {args.clients} clients, "
        f"compression {args.compression}"
    )

    context = multiprocessing.get_context("spawn")
    ready: multiprocessing.SimpleQueue[Any] = context.SimpleQueue()
    results: multiprocessing.SimpleQueue[Any] = context.SimpleQueue()
    stop = context.Event()
    shares = [
        args.clients // args.workers + (i < args.clients % args.workers)
        for i in range(args.workers)
    ]
    compression = None if args.compression == "none" else "deflate"
    workers = [
        context.Process(
            target=_client_worker,
            args=(ClientsSpec(url, token, n, compression), ready, stop, results),
        )
        for n in shares
        if n
    ]
    for worker in workers:
        worker.start()
    try:
        connected = sum(ready.get() for _ in workers)
        print(
            f"{connected} clients subscribed; pushing {args.rate} points/s for {args.seconds:g} s"
        )
        process = psutil.Process(running.pid)
        process.cpu_percent()
        load = Load(args.seconds, args.rate, args.batch, args.concurrency)
        produced = asyncio.run(_produce(url, key, load))
        cpu = process.cpu_percent()
        rss = process.memory_info().rss
        time.sleep(SETTLE)
        sent = _prometheus(url, "quarterdeck_ws_events_sent_total")
        dropped = _prometheus(url, "quarterdeck_ws_slow_clients_dropped_total")
    finally:
        stop.set()
    reports = [results.get() for _ in workers]
    for worker in workers:
        worker.join(timeout=30)

    outcome = _analyse(produced, reports, args.batch)
    received = sum(len(client) for report in reports for client in report["received"])
    posts = len(produced.accepted)
    achieved = posts * args.batch / produced.elapsed
    print(
        f"\npushed {posts} batches ({achieved:.0f} points/s, {produced.failures} failed); "
        f"POST p50 {_percentile(produced.post_seconds, 0.5) * 1000:.1f} ms, "
        f"p99 {_percentile(produced.post_seconds, 0.99) * 1000:.1f} ms"
    )
    print(f"server: {cpu:.0f} % CPU while pushing, RSS {rss / 2**20:.0f} MB at the end")
    print(
        f"events: {outcome.expected} published, each to {outcome.clients} clients; "
        f"{received} received, server counted {sent:.0f} sent, {dropped:.0f} clients dropped"
    )
    print("delivery latency per event and client (warm-up excluded):")
    print(_line("accepted -> received", outcome.total))
    print(_line("  accepted -> published", outcome.coalescing))
    print(_line("  published -> received", outcome.fanout))
    closes = [close for report in reports for close in report["closes"]]
    lost = outcome.lost + int(sent - received) + len(closes)
    print(
        f"lost: {outcome.lost} events missing at clients, {sent - received:.0f} sent but not "
        f"received, {len(closes)} abnormal closes {closes[:3]}; "
        f"last batch reached {outcome.final_delivered}/{outcome.clients} clients; "
        f"{outcome.partial} events without every series, {outcome.unmatched} unmatched"
    )
    p99 = _percentile(outcome.total, 0.99) if outcome.total else float("inf")
    ok = p99 < TARGET_P99 and lost == 0 and outcome.final_delivered == outcome.clients
    print(
        f"target: p99 < {TARGET_P99 * 1000:.0f} ms and nothing lost: "
        f"{'OK' if ok else 'MISSED'} (p99 {p99 * 1000:.1f} ms, lost {lost})"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

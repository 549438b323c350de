"""`quarterdeck agent`: sample this host on a fixed beat and push the points to a server.

The agent runs on every node of a cluster, so it has to be cheap and it must
not lose data when the server goes away. Two tasks share one event loop
(and one thread: each queue operation is one small SQLite transaction, cheaper
to run in place than to hand to a worker thread):

- the sampler reads psutil every `interval` and appends the points to a
  bounded on-disk queue (`DiskQueue`) before anything else, so a restart of
  the agent loses nothing already measured;
- the sender drains that queue oldest first, up to `batch_points` points per
  request, and deletes a batch only after the server acknowledged it. In
  steady state that is one request per interval over one kept-alive
  connection; after an outage the backlog is replayed in order.

A slow or absent server only ever delays the sender: the sampler keeps its
beat and the queue absorbs the difference, dropping its oldest points once
full, since the newest data is what an operator needs.

Answers from the server (POST /api/v1/metrics):

- 2xx: the batch is acknowledged and deleted;
- 400/422: the server judged the batch malformed, which a retry cannot fix,
  so it is dropped with an error, so that one bad batch never blocks the queue;
- 413: the batch is too large for the server; it is halved until a single
  stored batch is left, which is then dropped like a malformed one;
- 429: waits for Retry-After (or backs off when absent);
- 401/403 (bad or revoked key), 404 and other 4xx (wrong URL): logged as
  errors and retried at the longest backoff, keeping everything queued. The
  agent does not exit: an operator can fix the key or the route on the
  server, or restart the agent with a new key, and in every case the queued
  points still arrive; exiting would only make a service manager restart it
  in a loop. The queue bound caps what an unfixed key can cost;
- 5xx and network errors: the server is unavailable; exponential backoff
  with full jitter (so a cluster's agents do not all return at once), capped
  at `max_backoff`.

Only light modules are imported here (no SQLAlchemy, pydantic or
configuration), and points are plain dicts serialized by the stdlib: the
budget is half a percent of one core and 40 MB (`python -m bench agent`),
and the HTTP client alone takes about half of that CPU.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import email.utils
import importlib.util
import ipaddress
import logging
import os
import random
import signal
import socket
import sqlite3
import ssl
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from backend.collector.queue import Batch, DiskQueue, Point, QueueBusyError
from backend.collector.sampler import Sampler
from backend.domain.metrics import Sample

log = logging.getLogger(__name__)

APP_NAME = "quarterdeck"
"""The data directory's name, as in `backend.config` (not imported: it pulls in pydantic)."""
API_KEY_ENV = "QUARTERDECK_AGENT_API_KEY"
METRICS_PATH = "/api/v1/metrics"
USER_AGENT = "quarterdeck-agent/0.1"

MAX_RETRY_AFTER = 3600.0
"""A longer Retry-After is taken as a server mistake rather than obeyed for hours."""
SHUTDOWN_GRACE = 5.0
"""How long `stop()` lets a request already sent finish, so its answer is not
lost and the batch is not sent twice after a restart."""


class AgentError(Exception):
    """A problem the user can fix (bad option, queue in use); printed without a traceback."""


def default_queue_path() -> Path:
    import platformdirs  # noqa: PLC0415 - only needed when no --queue is given

    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False)) / "agent-queue.db"


class Agent:
    """Samples this host and delivers the points to `server_url`, surviving outages.

    `sample` replaces the psutil sampler (tests feed numbered points through
    it); `client_factory` replaces the HTTP client's construction, for custom
    transports or proxies. The API key is sent per request, so a custom client
    needs no credentials.
    """

    def __init__(
        self,
        server_url: str,
        api_key: str,
        *,
        interval: float = 1.0,
        host: str | None = None,
        queue_path: str | Path | None = None,
        max_queue_points: int = 1_000_000,
        batch_points: int = 5_000,
        verify: bool | str | Path = True,
        timeout: float = 10.0,
        max_backoff: float = 60.0,
        client_factory: Callable[[], httpx.AsyncClient] | None = None,
        sample: Callable[[float], Iterable[Sample]] | None = None,
    ) -> None:
        if interval <= 0:
            raise AgentError("the interval must be positive")
        parts = urlsplit(server_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise AgentError(f"the server URL must be http(s)://host[:port], not {server_url!r}")
        self.url = server_url.rstrip("/") + METRICS_PATH
        self.interval = interval
        self.host = host or socket.gethostname()
        self.queue_path = Path(queue_path) if queue_path is not None else default_queue_path()
        self.max_queue_points = max_queue_points
        self.batch_points = batch_points
        self.timeout = timeout
        self.max_backoff = max_backoff
        self.sent_points = 0
        self.rejected_points = 0
        """Points the server refused as malformed and that were dropped."""
        self._headers = {
            "Authorization": f"Bearer {api_key}",
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
        }
        self._verify = verify
        self._client_factory = client_factory or self._default_client
        self._sample = sample
        self._stopping = asyncio.Event()
        self._wake = asyncio.Event()
        self._queue: DiskQueue | None = None
        self._client: httpx.AsyncClient | None = None
        self._in_flight: asyncio.Task[float | None] | None = None
        self._limit = batch_points
        self._failures = 0
        self._unavailable_since: float | None = None
        if parts.scheme == "http" and not _is_loopback(parts.hostname):
            log.warning(
                "the server URL %s is plain HTTP: the API key crosses the network unencrypted",
                server_url,
            )

    def stop(self) -> None:
        """Ask `run` to return; call it from the event loop's thread (a signal handler
        via `loop.add_signal_handler`, or `loop.call_soon_threadsafe` elsewhere)."""
        self._stopping.set()

    async def run(self) -> None:
        """Sample and send until `stop()` or cancellation; the queue survives either."""
        tasks: list[asyncio.Task[None]] = []
        try:
            self._client = self._client_factory()
            # Opening may replay a large write-ahead log after a crash: off the loop.
            self._queue = queue = await asyncio.to_thread(
                DiskQueue, self.queue_path, self.max_queue_points
            )
            if queue.size():
                log.info("%d points queued from an earlier run will be sent first", queue.size())
            log.info(
                "agent for host %s: sampling every %gs, pushing to %s",
                self.host,
                self.interval,
                self.url,
            )
            tasks = [
                asyncio.create_task(self._sample_loop(), name="agent-sampler"),
                asyncio.create_task(self._send_loop(), name="agent-sender"),
                asyncio.create_task(self._wait_for_stop(), name="agent-stop"),
            ]
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()  # the loops never end: one that did is a bug, so surface it
        finally:
            await self._shut_down(tasks)

    async def _wait_for_stop(self) -> None:
        await self._stopping.wait()

    async def _shut_down(self, tasks: list[asyncio.Task[None]]) -> None:
        in_flight = self._in_flight
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if in_flight is not None and not in_flight.done():
            # Let a request the server may already be processing finish and
            # be acked, rather than resend it after the restart.
            await asyncio.wait({in_flight}, timeout=SHUTDOWN_GRACE)
            in_flight.cancel()
            await asyncio.gather(in_flight, return_exceptions=True)
        if self._client is not None:
            await self._client.aclose()
        if self._queue is not None:
            left = self._queue.size()
            await asyncio.to_thread(self._queue.close)  # a checkpoint may fsync
            if left:
                log.info("stopped with %d points queued; they are sent on the next start", left)
        self._client = self._queue = None
        self._in_flight = None
        self._stopping.clear()

    def _default_client(self) -> httpx.AsyncClient:
        verify: bool | ssl.SSLContext
        if isinstance(self._verify, bool):
            verify = self._verify
        else:
            try:
                verify = ssl.create_default_context(cafile=str(self._verify))
            except (OSError, ssl.SSLError) as error:
                raise AgentError(f"cannot use the CA file {self._verify}: {error}") from None
        return httpx.AsyncClient(
            verify=verify,
            timeout=httpx.Timeout(self.timeout, connect=min(self.timeout, 5.0)),
            # One connection, kept alive: requests are strictly sequential.
            limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
        )

    # -- sampling --------------------------------------------------------------

    async def _sample_loop(self) -> None:
        """Keep a fixed beat against the monotonic clock: time spent queueing
        shortens the next wait instead of drifting the schedule."""
        assert self._queue is not None
        sample = self._sample or Sampler().sample
        host = self.host
        loop = asyncio.get_running_loop()
        next_beat = loop.time()
        while True:
            now = time.time()
            try:
                samples = sample(now)
                points: list[Point] = [
                    {
                        "host": host,
                        "metric": s.metric,
                        "labels": s.labels,
                        "ts": now,
                        "value": s.value,
                    }
                    for s in samples
                ]
            except Exception:
                log.exception("sampling this host failed; skipping this interval")
                points = []
            if points:
                try:
                    self._queue.put(points)
                except sqlite3.Error:
                    log.exception(
                        "could not queue %d points (disk full?); they are lost", len(points)
                    )
                else:
                    self._wake.set()
            next_beat += self.interval
            delay = next_beat - loop.time()
            if delay < 0:  # fell behind (suspend, long stall): restart the beat from now
                next_beat = loop.time()
                delay = 0.0
            await asyncio.sleep(delay)

    # -- sending ---------------------------------------------------------------

    async def _send_loop(self) -> None:
        assert self._queue is not None
        queue = self._queue
        while True:
            # Cleared before looking, set by every put after it: no put is missed.
            self._wake.clear()
            if queue.size() == 0:
                await self._wake.wait()
                continue
            try:
                batch = queue.peek(self._limit)
            except sqlite3.Error:
                log.exception("could not read the agent queue; retrying")
                await asyncio.sleep(self._backoff())
                continue
            if batch is None:
                continue
            # Shielded so that stop() can let it finish (see _shut_down).
            self._in_flight = asyncio.create_task(self._deliver(batch))
            try:
                delay = await asyncio.shield(self._in_flight)
            except sqlite3.Error:  # the ack failed: the batch will be sent again
                log.exception("could not remove a delivered batch from the agent queue")
                delay = self._backoff()
            finally:
                self._in_flight = None
            if delay:
                await asyncio.sleep(delay)

    async def _deliver(self, batch: Batch) -> float | None:
        """Send one batch and act on the answer; returns how long to wait before the next try."""
        assert self._client is not None
        body = f'{{"points":{batch.points_json}}}'.encode()
        try:
            response = await self._client.post(self.url, content=body, headers=self._headers)
        except httpx.HTTPError as error:  # refused, reset, timed out, TLS failure
            return self._unavailable(
                f"{type(error).__name__}: {error}" if str(error) else repr(error)
            )
        status = response.status_code
        if 200 <= status < 300:
            self._ack(batch)
            self.sent_points += batch.count
            if self._unavailable_since is not None:
                log.info(
                    "the server is reachable again after %.0fs; %d points still queued",
                    time.monotonic() - self._unavailable_since,
                    self._queued(),
                )
                self._unavailable_since = None
            self._failures = 0
            return None
        if status == 413 and batch.ids[0] < batch.ids[1]:
            self._limit = max(1, batch.count // 2)
            log.warning(
                "the server refused %d points as too large; sending at most %d per request",
                batch.count,
                self._limit,
            )
            return None
        if status in (400, 413, 422):
            log.error(
                "the server rejected %d points as malformed (HTTP %d: %s); dropped them",
                batch.count,
                status,
                _excerpt(response),
            )
            self._ack(batch)
            self.rejected_points += batch.count
            return None
        if status == 429:
            wait = _retry_after(response.headers.get("Retry-After"))
            if wait is None:
                return self._unavailable("HTTP 429 without Retry-After")
            log.info("the server asked to slow down: waiting %.1fs", wait)
            return wait
        if status >= 500:
            return self._unavailable(f"HTTP {status}")
        # 401/403 (key wrong, revoked or lacking metrics:write), 404 (wrong
        # URL or server version), anything else unexpected: a person has to
        # act, so retry slowly and say so each time.
        reason = {
            401: "the API key was refused",
            403: "the API key is not allowed to write metrics (needs the metrics:write scope)",
            404: f"the server has no {METRICS_PATH} (wrong URL?)",
        }.get(status, "unexpected answer")
        log.error(
            "%s (HTTP %d: %s); keeping %d points queued and retrying",
            reason,
            status,
            _excerpt(response),
            self._queued(),
        )
        self._failures += 1
        return random.uniform(self.max_backoff / 2, self.max_backoff)

    def _queued(self) -> int:
        return self._queue.size() if self._queue is not None else 0

    def _ack(self, batch: Batch) -> None:
        # Straight after the answer, with no await in between: nothing can
        # cancel the agent between the server's 2xx and this commit.
        assert self._queue is not None
        self._queue.ack(batch.ids)

    def _unavailable(self, reason: str) -> float:
        if self._unavailable_since is None:
            self._unavailable_since = time.monotonic()
            log.warning("the server is unavailable (%s); queueing points on disk", reason)
        else:
            log.debug("the server is still unavailable (%s)", reason)
        return self._backoff()

    def _backoff(self) -> float:
        """Full jitter: uniform in [0, min(cap, base * 2^failures)], base = the interval."""
        ceiling = min(self.max_backoff, self.interval * 2 ** min(self._failures, 30))
        self._failures += 1
        return random.uniform(0, ceiling)


def _is_loopback(hostname: str) -> bool:
    if hostname == "localhost":
        return True
    try:
        return ipaddress.ip_address(hostname).is_loopback
    except ValueError:
        return False


def _excerpt(response: httpx.Response) -> str:
    text = response.text.strip().replace("\n", " ")
    return text[:200] or "no body"


def _retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP date."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = email.utils.parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError):
            return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


# -- command line ----------------------------------------------------------------


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError("must be positive")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The `quarterdeck agent` options, for the CLI and `python -m backend.collector.agent`."""
    parser.add_argument(
        "--server", required=True, metavar="URL", help="e.g. https://qd.example:8443"
    )
    key = parser.add_mutually_exclusive_group()
    key.add_argument(
        "--api-key",
        metavar="KEY",
        help=f"API key with the metrics:write scope (visible to other local users in the "
        f"process list: prefer --api-key-file or the {API_KEY_ENV} variable)",
    )
    key.add_argument("--api-key-file", metavar="PATH", help="read the API key from this file")
    parser.add_argument(
        "--interval", type=_positive, default=1.0, metavar="SECONDS", help="default: 1"
    )
    parser.add_argument("--host-name", help="name to report this host as (default: its hostname)")
    parser.add_argument(
        "--queue", metavar="PATH", help="on-disk queue file (default: in the user data directory)"
    )
    parser.add_argument(
        "--max-queue-points",
        type=int,
        default=1_000_000,
        metavar="N",
        help="the oldest points are dropped beyond this (default: 1000000)",
    )
    tls = parser.add_mutually_exclusive_group()
    tls.add_argument(
        "--ca-file", metavar="PATH", help="trust the server certificates this CA signed"
    )
    tls.add_argument(
        "--insecure-skip-verify",
        action="store_true",
        help="do not verify the server's certificate (testing only)",
    )


def _api_key(args: argparse.Namespace) -> str:
    if args.api_key_file:
        try:
            key = Path(args.api_key_file).read_text(encoding="utf-8").strip()
        except OSError as error:
            raise AgentError(f"cannot read {args.api_key_file}: {error.strerror}") from None
        if not key:
            raise AgentError(f"{args.api_key_file} is empty")
        return str(key)
    key = args.api_key or os.environ.get(API_KEY_ENV, "").strip()
    if not key:
        raise AgentError(f"no API key: give --api-key-file, --api-key or {API_KEY_ENV}")
    return str(key)


def run_agent(args: argparse.Namespace) -> int:
    """Run until SIGINT/SIGTERM; the exit status for the CLI (0 after a clean stop)."""
    _remember_missing_sniffio()
    if not logging.getLogger().handlers:
        logging.basicConfig(
            level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
        )
    try:
        verify: bool | str = args.ca_file or not args.insecure_skip_verify
        if args.insecure_skip_verify:
            log.warning("not verifying the server's certificate (--insecure-skip-verify)")
        agent = Agent(
            args.server,
            _api_key(args),
            interval=args.interval,
            host=args.host_name,
            queue_path=args.queue,
            max_queue_points=args.max_queue_points,
            verify=verify,
        )

        async def main() -> None:
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGINT, signal.SIGTERM):
                # Windows has no add_signal_handler: there Ctrl-C cancels run() instead.
                with contextlib.suppress(NotImplementedError, RuntimeError):
                    loop.add_signal_handler(signum, agent.stop)
            await agent.run()

        # A selector loop, as every Quarterdeck entry point (see backend.cli.run_async).
        with asyncio.Runner(loop_factory=asyncio.SelectorEventLoop) as runner:
            runner.run(main())
    except (AgentError, QueueBusyError) as error:
        sys.stderr.write(f"quarterdeck agent: {error}\n")
        return 1
    except KeyboardInterrupt:
        pass
    return 0


def _remember_missing_sniffio() -> None:
    """Make httpcore's per-request `import sniffio` cheap when sniffio is not installed.

    httpcore imports the optional sniffio inside a function it calls several
    times per request, and Python does not cache a failed import, so every
    request searched the whole sys.path for it again: about a fifth of the
    agent's CPU (encode/httpcore#1103; anyio stopped depending on sniffio in
    4.11). A None entry in sys.modules makes the import fail at once. Done at
    process entry only: it changes process-wide state.
    """
    if "sniffio" not in sys.modules and importlib.util.find_spec("sniffio") is None:
        sys.modules["sniffio"] = None  # type: ignore[assignment]


def main(argv: list[str] | None = None) -> int:
    """`python -m backend.collector.agent`: the agent without the CLI's heavier imports."""
    parser = argparse.ArgumentParser(
        prog="quarterdeck agent", description="Push this host's metrics to a Quarterdeck server."
    )
    add_arguments(parser)
    return run_agent(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())

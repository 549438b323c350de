"""The agent over real HTTP on loopback: normal push, outages, restarts and every answer.

Most scenarios run against a small receiving server (Starlette under
uvicorn, on a loopback port) that records what arrives and can be told to
answer 401, 413, 422, 429, to hang, or to go away entirely, which the product
server cannot be made to do on demand. The agent's side is entirely real:
its HTTP client, its on-disk queue, its timing. The last test pushes to the
product server itself.

Most agents here sample a counter instead of psutil, one point per beat whose
value is its sequence number, so "every point arrives once and in order" is
an exact comparison with `range(n)`.
"""

from __future__ import annotations

import asyncio
import email.utils
import itertools
import json
import socket
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from backend.collector.agent import API_KEY_ENV, Agent, _retry_after
from backend.collector.agent import main as agent_main
from backend.collector.queue import DiskQueue
from backend.core import Core
from backend.domain.metrics import Sample
from tests.api.server import running_server
from tests.conftest import Backend, Team

KEY = "qdk_test_agent_key"
INTERVAL = 0.1
BACKOFF = 0.3
"""Backoff cap for these tests: a returning server is noticed within it."""


@dataclass
class Receiver:
    """What the stand-in server got, and how it should answer next."""

    api_key: str = KEY
    points: list[dict[str, Any]] = field(default_factory=list)
    rejected: list[list[dict[str, Any]]] = field(default_factory=list)
    arrivals: list[float] = field(default_factory=list)
    """Monotonic arrival time of every request, answered how it may."""
    script: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    """Answers (status, headers) to give before accepting again, first first."""
    hold: asyncio.Event | None = None
    """While set to an unset event, requests wait for it: a hung server."""

    @property
    def values(self) -> list[int]:
        return [int(point["value"]) for point in self.points]

    async def metrics(self, request: Request) -> JSONResponse:
        self.arrivals.append(time.monotonic())
        if self.hold is not None:
            await self.hold.wait()
        if request.headers.get("authorization") != f"Bearer {self.api_key}":
            return JSONResponse({"error": {"code": "unauthenticated"}}, status_code=401)
        points = json.loads(await request.body())["points"]
        if self.script:
            status, headers = self.script.pop(0)
            self.rejected.append(points)
            return JSONResponse({"error": {"code": str(status)}}, status, headers=headers)
        self.points.extend(points)
        series = {(p["host"], p["metric"], json.dumps(p["labels"])) for p in points}
        return JSONResponse({"accepted": len(points), "series": len(series)})


class StandIn:
    """The receiving server; `stop` really closes the port (connections are refused)."""

    def __init__(self, receiver: Receiver) -> None:
        self.receiver = receiver
        self.app = Starlette(routes=[Route("/api/v1/metrics", receiver.metrics, methods=["POST"])])
        self.port = 0
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self.app,
            log_config=None,
            access_log=False,
            lifespan="off",
            ws="none",
            timeout_graceful_shutdown=1,
        )
        self._server = uvicorn.Server(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]))
        await wait_for(lambda: self._server is not None and self._server.started)

    async def stop(self) -> None:
        if self._server is None or self._task is None:
            return
        self._server.should_exit = True
        await self._task
        self._server = self._task = None


@pytest_asyncio.fixture
async def stand_in() -> AsyncIterator[StandIn]:
    server = StandIn(Receiver())
    await server.start()
    try:
        yield server
    finally:
        if server.receiver.hold is not None:
            server.receiver.hold.set()
        await server.stop()


class Counter:
    """A sampler whose one point per beat is numbered 0, 1, 2, ...; shareable across agents."""

    def __init__(self) -> None:
        self.next = 0
        self.beats: list[float] = []

    def __call__(self, now: float) -> list[Sample]:
        self.beats.append(time.monotonic())
        value = self.next
        self.next += 1
        return [Sample("cpu.percent", {}, float(value))]


class Running:
    """An agent running as a task of the test's loop."""

    def __init__(self, agent: Agent) -> None:
        self.agent = agent
        self.task = asyncio.create_task(agent.run())

    async def stop(self) -> None:
        self.agent.stop()
        await asyncio.wait_for(self.task, timeout=10)


def start_agent(
    url: str, queue: Path, sample: Callable[[float], list[Sample]] | None, **options: Any
) -> Running:
    settings: dict[str, Any] = {
        "interval": INTERVAL,
        "max_backoff": BACKOFF,
        "timeout": 5.0,
        "host": "node-a",
        "queue_path": queue,
        "sample": sample,
    }
    key = options.pop("api_key", KEY)
    settings.update(options)
    return Running(Agent(url, key, **settings))


async def wait_for(condition: Callable[[], bool], within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for the agent")
        await asyncio.sleep(0.02)


def left_in_queue(path: Path) -> list[int]:
    with DiskQueue(path, 1_000_000) as queue:
        batch = queue.peek(1_000_000)
        return [] if batch is None else [int(point["value"]) for point in batch.points]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def queue_path(tmp_path: Path) -> Path:
    return tmp_path / "agent-queue.db"


@pytest.mark.asyncio
async def test_pushes_real_samples_one_request_per_interval(
    stand_in: StandIn, queue_path: Path
) -> None:
    running = start_agent(stand_in.url, queue_path, None, interval=0.2)
    await wait_for(lambda: len(stand_in.receiver.arrivals) >= 4)
    await running.stop()
    points = stand_in.receiver.points
    assert {point["host"] for point in points} == {"node-a"}
    assert {"cpu.percent", "mem.used_percent"} <= {point["metric"] for point in points}
    stamps = [point["ts"] for point in points]
    assert stamps == sorted(stamps)
    # One request per beat at most: a beat's points travel together.
    assert len(stand_in.receiver.arrivals) <= len(set(stamps))
    assert abs(stamps[0] - time.time()) < 10


@pytest.mark.asyncio
async def test_outage_then_every_point_arrives_once_in_order(
    stand_in: StandIn, queue_path: Path
) -> None:
    counter = Counter()
    receiver = stand_in.receiver
    running = start_agent(stand_in.url, queue_path, counter)
    await wait_for(lambda: len(receiver.points) >= 3)
    await stand_in.stop()  # the port is closed: connections are refused
    produced_at_outage = counter.next
    await asyncio.sleep(6 * INTERVAL)
    assert counter.next >= produced_at_outage + 3  # sampling went on
    received_during_outage = len(receiver.points)
    await stand_in.start()
    target = counter.next + 2
    await wait_for(lambda: len(receiver.points) >= target)
    await running.stop()
    assert received_during_outage <= produced_at_outage
    assert receiver.values + left_in_queue(queue_path) == list(range(counter.next))


@pytest.mark.asyncio
async def test_points_queued_before_a_restart_arrive_after_it(queue_path: Path) -> None:
    counter = Counter()
    receiver = Receiver()
    server = StandIn(receiver)
    server.port = free_port()  # nobody listens yet
    first = start_agent(server.url, queue_path, counter)
    await asyncio.sleep(5 * INTERVAL)
    await first.stop()
    before_restart = counter.next
    assert before_restart >= 3
    assert left_in_queue(queue_path) == list(range(before_restart))

    second = start_agent(server.url, queue_path, counter)
    await server.start()
    try:
        await wait_for(lambda: len(receiver.points) >= before_restart + 2)
        await second.stop()
    finally:
        await server.stop()
    assert receiver.values + left_in_queue(queue_path) == list(range(counter.next))


@pytest.mark.asyncio
async def test_retry_after_is_respected(stand_in: StandIn, queue_path: Path) -> None:
    counter = Counter()
    receiver = stand_in.receiver
    receiver.script = [(429, {"Retry-After": "1"})]
    running = start_agent(stand_in.url, queue_path, counter)
    await wait_for(lambda: len(receiver.points) >= 3)
    await running.stop()
    assert receiver.arrivals[1] - receiver.arrivals[0] >= 0.95
    # The refused batch was kept and sent again: nothing lost, nothing twice.
    assert receiver.values + left_in_queue(queue_path) == list(range(counter.next))
    assert receiver.values[0] == 0


@pytest.mark.asyncio
async def test_a_malformed_batch_is_dropped_and_the_queue_moves_on(
    stand_in: StandIn, queue_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    counter = Counter()
    receiver = stand_in.receiver
    receiver.script = [(422, {})]
    running = start_agent(stand_in.url, queue_path, counter)
    await wait_for(lambda: len(receiver.points) >= 3)
    await running.stop()
    dropped = [int(point["value"]) for point in receiver.rejected[0]]
    assert dropped[0] == 0
    assert dropped + receiver.values + left_in_queue(queue_path) == list(range(counter.next))
    assert running.agent.rejected_points == len(dropped)
    assert "rejected" in caplog.text
    assert "malformed" in caplog.text


@pytest.mark.asyncio
async def test_a_batch_too_large_for_the_server_is_split(
    stand_in: StandIn, queue_path: Path
) -> None:
    counter = Counter()
    receiver = stand_in.receiver
    await stand_in.stop()
    running = start_agent(stand_in.url, queue_path, counter)
    await wait_for(lambda: counter.next >= 6)  # a backlog of several stored batches
    receiver.script = [(413, {})]
    await stand_in.start()
    target = counter.next + 2
    await wait_for(lambda: len(receiver.points) >= target)
    await running.stop()
    assert len(receiver.rejected[0]) >= 6
    assert receiver.values + left_in_queue(queue_path) == list(range(counter.next))


@pytest.mark.asyncio
async def test_a_refused_key_keeps_the_points_until_it_is_fixed(
    stand_in: StandIn, queue_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    counter = Counter()
    receiver = stand_in.receiver
    receiver.api_key = "some-other-key"
    running = start_agent(stand_in.url, queue_path, counter)
    await wait_for(lambda: len(receiver.arrivals) >= 2)
    assert "API key was refused" in caplog.text
    receiver.api_key = KEY  # an operator fixes it on the server
    target = counter.next + 2
    await wait_for(lambda: len(receiver.points) >= target)
    await running.stop()
    assert receiver.values + left_in_queue(queue_path) == list(range(counter.next))


@pytest.mark.asyncio
async def test_a_hung_server_never_delays_sampling(stand_in: StandIn, queue_path: Path) -> None:
    counter = Counter()
    receiver = stand_in.receiver
    receiver.hold = asyncio.Event()
    running = start_agent(stand_in.url, queue_path, counter)
    await wait_for(lambda: len(receiver.arrivals) >= 1)
    started = time.monotonic()
    await asyncio.sleep(10 * INTERVAL)
    beats = [beat for beat in counter.beats if beat >= started]
    # Generous bounds for a busy machine: a sampler waiting on the server would show none.
    assert len(beats) >= 5
    assert max(b - a for a, b in itertools.pairwise(beats)) < 5 * INTERVAL
    receiver.hold.set()
    target = counter.next + 2
    await wait_for(lambda: len(receiver.points) >= target)
    await running.stop()
    assert receiver.values + left_in_queue(queue_path) == list(range(counter.next))


@pytest.mark.asyncio
async def test_stop_lets_a_request_in_flight_finish(stand_in: StandIn, queue_path: Path) -> None:
    """Stopping mid-request must not cause a resend (a duplicate) after the restart."""
    counter = Counter()
    receiver = stand_in.receiver
    receiver.hold = asyncio.Event()
    running = start_agent(stand_in.url, queue_path, counter)
    await wait_for(lambda: len(receiver.arrivals) >= 1)
    running.agent.stop()
    await asyncio.sleep(0.3)
    assert not running.task.done()  # waiting for the answer
    receiver.hold.set()
    await asyncio.wait_for(running.task, timeout=5)
    assert receiver.values
    assert receiver.values + left_in_queue(queue_path) == list(range(counter.next))


@pytest.mark.asyncio
async def test_pushes_to_the_product_server(
    backend: Backend, core: Core, team: Team, queue_path: Path
) -> None:
    created = await core.api_keys.create(team.operator, name="agent", scopes=["metrics:write"])
    with running_server(backend.settings) as server:
        running = start_agent(
            server.url, queue_path, None, host="e2e-node", interval=0.2, api_key=created.secret
        )
        await wait_for(lambda: running.agent.sent_points > 0, within=10)
        await running.stop()
    series = await core.metrics.series(team.viewer, host="e2e-node")
    assert "cpu.percent" in {view.metric for view in series}


@pytest.mark.asyncio
async def test_a_killed_agent_process_loses_nothing_it_queued(
    stand_in: StandIn, queue_path: Path, tmp_path: Path
) -> None:
    """The command-line agent, killed outright while the server is away, then restarted."""
    await stand_in.stop()
    key_file = tmp_path / "key"
    key_file.write_text(KEY + "\n", encoding="utf-8")
    command = [
        sys.executable,
        "-m",
        "backend.collector.agent",
        *("--server", stand_in.url, "--api-key-file", str(key_file)),
        *("--queue", str(queue_path), "--interval", "0.1", "--host-name", "node-k"),
    ]
    process = await asyncio.create_subprocess_exec(*command, stderr=asyncio.subprocess.PIPE)
    assert process.stderr is not None
    try:
        # Once it has found the server away, let it queue a few more beats.
        async with asyncio.timeout(20):
            while b"unavailable" not in (line := await process.stderr.readline()):
                assert line, "the agent exited early"
        await asyncio.sleep(5 * INTERVAL)
    finally:
        process.kill()
        await process.communicate()
    with DiskQueue(queue_path, 1_000_000) as queue:
        batch = queue.peek(1_000_000)
        assert batch is not None
        queued = batch.points
    assert {point["host"] for point in queued} == {"node-k"}

    await stand_in.start()
    running = start_agent(stand_in.url, queue_path, None, host="node-k")
    await wait_for(lambda: len(stand_in.receiver.points) > len(queued))
    await running.stop()
    assert stand_in.receiver.points[: len(queued)] == queued
    stamps = [point["ts"] for point in stand_in.receiver.points]
    assert stamps == sorted(stamps)


def test_the_command_line_needs_a_key(
    queue_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv(API_KEY_ENV, raising=False)
    assert agent_main(["--server", "http://127.0.0.1:9", "--queue", str(queue_path)]) == 1
    assert "no API key" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        agent_main(["--server", "http://x", "--api-key", "k", "--api-key-file", "f"])


def test_the_command_line_refuses_a_queue_in_use(
    queue_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two agents on one queue would send every point twice."""
    with DiskQueue(queue_path, 10):
        code = agent_main(
            ["--server", "http://127.0.0.1:9", "--api-key", KEY, "--queue", str(queue_path)]
        )
    assert code == 1
    assert "in use" in capsys.readouterr().err


def test_retry_after_takes_seconds_or_a_date() -> None:
    assert _retry_after("7") == 7.0
    assert _retry_after("-3") == 0.0
    in_a_minute = email.utils.formatdate(time.time() + 60, usegmt=True)
    wait = _retry_after(in_a_minute)
    assert wait is not None
    assert 55 < wait <= 60
    assert _retry_after("soon") is None
    assert _retry_after(None) is None

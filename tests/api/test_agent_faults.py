"""The real agent pushing to the real server while PostgreSQL and Redis go away and return.

The server runs over a private PostgreSQL cluster and a private Redis (see
`tests.private_services`), never the machine's shared ones, so the test may
stop them. The agent samples a counter instead of psutil: one point per beat
whose value is its sequence number, so "every point arrived exactly once" is
an exact comparison of what is stored with `range(n)`.

While a dependency is down the server answers 503 `unavailable` (to the
agent, to a direct POST and on /readyz), the agent keeps sampling into its
disk queue and backs off; once the dependency is back the server recovers by
itself and the agent replays its backlog. At the end nothing is lost and
nothing was stored twice: the points table has no unique key, so a batch
ingested twice would show as duplicate rows.

It runs twice: with the default request budget, which is counted in Redis, so
pushes are refused while Redis is down; and with the budget off
(`api.requests_per_minute` = 0), where Redis only carries live updates and
pushes go on being accepted through a Redis outage. The second case caught
ingest answering 503 for points it had already committed (when the live
update after the commit could not be published), which the agent rightly
sent again: stored twice.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import psycopg
import pytest

from backend.collector.agent import Agent
from backend.config import Settings
from backend.core import Core
from backend.domain.metrics import Sample
from backend.domain.permissions import Role
from backend.domain.principal import Principal
from tests.api.server import running_server
from tests.conftest import PASSWORD, TEST_SECRET

if TYPE_CHECKING:
    # Only for annotations (see tests/api/test_faults.py): importing it for real
    # before pytest registers it as a plugin would stop its asserts being rewritten.
    from tests.private_services import PrivatePostgres, PrivateRedis

pytest_plugins = ["tests.private_services"]

HOST = "fault-node"
METRIC = "cpu.percent"
INTERVAL = 0.2
"""The agent's beat: an outage of OUTAGE seconds spans several of them."""
BACKOFF = 0.5
"""The agent's longest backoff: a returning server is noticed within it."""
OUTAGE = 1.5
"""Seconds each dependency stays down once the server has been seen answering 503."""
BUDGET_SETTING = "api.requests_per_minute"
"""The per-principal request budget, counted in Redis; 0 turns it off."""
RECOVERY = 20.0
"""Seconds the server may take to be ready again, and the agent to catch up."""


@dataclass
class Counter:
    """The agent's sampler: point n has value n; once `paused`, beats sample nothing."""

    produced: int = 0
    paused: bool = False

    def __call__(self, now: float) -> list[Sample]:
        if self.paused:
            return []
        value = self.produced
        self.produced += 1
        return [Sample(METRIC, {}, float(value))]


@dataclass
class Answer:
    phase: str
    status: int
    dependency: str | None


@dataclass
class Answers:
    """Every answer the agent got from the server, tagged with the test's phase at the time."""

    phase: str = "up"
    seen: list[Answer] = field(default_factory=list)

    async def record(self, response: httpx.Response) -> None:
        dependency = None
        if response.status_code == 503:
            await response.aread()
            dependency = response.json()["error"]["details"]["dependency"]
        self.seen.append(Answer(self.phase, response.status_code, dependency))

    def during(self, phase: str) -> list[Answer]:
        return [answer for answer in self.seen if answer.phase == phase]

    def client_factory(self) -> Callable[[], httpx.AsyncClient]:
        def make() -> httpx.AsyncClient:
            # As the agent's own client (one kept-alive connection), plus the hook.
            return httpx.AsyncClient(
                timeout=httpx.Timeout(10.0, connect=5.0),
                limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
                event_hooks={"response": [self.record]},
            )

        return make


@pytest.fixture
def settings(
    private_postgres: PrivatePostgres,
    private_redis: PrivateRedis,
    tmp_path_factory: pytest.TempPathFactory,
) -> Settings:
    return Settings(
        data_dir=tmp_path_factory.mktemp("agent-faults"),
        secret_key=TEST_SECRET,
        database_url=private_postgres.url,
        redis_url=private_redis.url,
        auto_migrate=False,
        run_jobs=False,
        collect_local=False,
    )


async def _agent_key(settings: Settings, *, metered: bool) -> str:
    """An admin to read with and an operator's metrics:write key, made through the core
    before the server starts (which also reads the request budget only from then on)."""
    async with Core.open(settings.model_copy(update={"live_events": False})) as core:
        admin_view = await core.users.create_first_admin(username="ada", password=PASSWORD)
        admin = Principal.for_user(user_id=admin_view.id, username="ada", role=Role.ADMIN)
        operator_view = await core.users.create(
            admin, username="otto", password=PASSWORD, role="operator"
        )
        operator = Principal.for_user(user_id=operator_view.id, username="otto", role=Role.OPERATOR)
        created = await core.api_keys.create(operator, name="agent", scopes=["metrics:write"])
        if not metered:
            await core.settings.write(admin, BUDGET_SETTING, 0, expected_version=0)
        return created.secret


async def _eventually(condition: Callable[[], bool], what: str, within: float = RECOVERY) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def _wait_ready(client: httpx.AsyncClient) -> None:
    deadline = time.monotonic() + RECOVERY
    while True:
        response = await client.get("/readyz")
        if response.status_code == 200:
            assert response.json()["checks"] == {"database": "ok", "bus": "ok"}
            return
        assert time.monotonic() < deadline, f"not ready again: {response.text}"
        await asyncio.sleep(0.1)


async def _assert_not_ready(
    client: httpx.AsyncClient, key: str, down: str, *, accepts_pushes: bool
) -> None:
    """/readyz answers 503 naming the dependency that is down; a direct push is
    refused the same way, unless it does not need that dependency."""
    ready = await client.get("/readyz")
    assert ready.status_code == 503, ready.text
    checks = ready.json()["checks"]
    check = {"database": "database", "redis": "bus"}[down]
    assert checks[check].startswith("unreachable"), checks
    assert [value for name, value in checks.items() if name != check] == ["ok"], checks
    point = {"host": "probe", "metric": METRIC, "labels": {}, "ts": time.time(), "value": 0.0}
    pushed = await client.post(
        "/api/v1/metrics",
        json={"points": [point]},
        headers={"Authorization": f"Bearer {key}"},
    )
    if accepts_pushes:
        assert pushed.status_code == 200, pushed.text
        assert pushed.json() == {"accepted": 1, "series": 1}
        return
    assert pushed.status_code == 503, pushed.text
    error = pushed.json()["error"]
    assert error["code"] == "unavailable"
    assert error["details"]["dependency"] == down


@dataclass
class Outage:
    name: str
    """As the 503 answer names the dependency: "database" or "redis"."""
    stop: Callable[[], None]
    start: Callable[[], None]
    accepts_pushes: bool = False
    """Whether ingest goes on without it (Redis, when the request budget is off)."""


async def _outage(
    outage: Outage,
    client: httpx.AsyncClient,
    key: str,
    agent: Agent,
    counter: Counter,
    answers: Answers,
) -> None:
    """Take a dependency down for a few beats while the agent pushes, then bring it back."""
    await _eventually(lambda: agent.sent_points >= counter.produced - 1, "a steady state")
    # Blocking process control runs off the loop: the agent keeps its beat meanwhile.
    await asyncio.to_thread(outage.stop)
    answers.phase = f"{outage.name} down"
    down_since = counter.produced
    await _assert_not_ready(client, key, outage.name, accepts_pushes=outage.accepts_pushes)
    # Pushes are sequential: once one got its answer now, any earlier one was acked.
    expected = 200 if outage.accepts_pushes else 503
    await _eventually(
        lambda: any(answer.status == expected for answer in answers.during(answers.phase)),
        f"the agent to be answered {expected}",
    )
    sent_when_down = agent.sent_points
    await asyncio.sleep(OUTAGE)
    assert counter.produced >= down_since + int(OUTAGE / INTERVAL) - 2, "sampling stalled"
    if outage.accepts_pushes:
        assert agent.sent_points > sent_when_down, "no push was accepted during the outage"
    else:
        # Refused, the agent keeps its points queued on disk while it backs off.
        assert agent.sent_points == sent_when_down, "points were acknowledged during the outage"
    answers.phase = f"{outage.name} returning"  # answers from here on may be either
    await asyncio.to_thread(outage.start)
    await _wait_ready(client)
    # The backlog is replayed: everything sampled up to now arrives.
    target = counter.produced
    await _eventually(lambda: agent.sent_points >= target, "the backlog to arrive")
    down = answers.during(f"{outage.name} down")
    if outage.accepts_pushes:
        assert {answer.status for answer in down} == {200}, down
    else:
        # The first answer may be to a push the stop overtook; every later one is 503.
        assert {(answer.status, answer.dependency) for answer in down[1:]} == {
            (503, outage.name)
        }, down


async def _stored_through_the_api(client: httpx.AsyncClient) -> tuple[int, list[dict[str, Any]]]:
    """The agent's series id and its raw-resolution buckets, read as a viewer would."""
    login = await client.post("/api/v1/auth/login", json={"username": "ada", "password": PASSWORD})
    assert login.status_code == 200, login.text
    headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
    listed = await client.get("/api/v1/metrics/series", params={"host": HOST}, headers=headers)
    assert listed.status_code == 200, listed.text
    assert [(s["host"], s["metric"], s["labels"]) for s in listed.json()] == [(HOST, METRIC, {})]
    series_id = int(listed.json()[0]["id"])
    now = time.time()
    queried = await client.get(
        "/api/v1/metrics/query",
        params={"series": series_id, "start": now - 600, "end": now + 60, "max_points": 10_000},
        headers=headers,
    )
    assert queried.status_code == 200, queried.text
    [data] = queried.json()
    assert data["resolution"] == 0  # raw points, not rollups
    buckets: list[dict[str, Any]] = data["buckets"]
    return series_id, buckets


def _stored_rows(database_url: str, series_id: int) -> list[tuple[float, float]]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT ts, value FROM metric_points WHERE series_id = %s ORDER BY ts, value",
            (series_id,),
        ).fetchall()
    return [(float(ts), float(value)) for ts, value in rows]


@pytest.mark.asyncio
@pytest.mark.parametrize("metered", [True, False], ids=["budget-in-redis", "unmetered"])
async def test_agent_points_survive_postgres_and_redis_outages_exactly_once(
    metered: bool,
    settings: Settings,
    private_postgres: PrivatePostgres,
    private_redis: PrivateRedis,
    tmp_path: Path,
) -> None:
    key = await _agent_key(settings, metered=metered)
    outages = [
        Outage("database", private_postgres.stop, private_postgres.start),
        Outage("redis", private_redis.stop, private_redis.start, accepts_pushes=not metered),
    ]
    counter = Counter()
    answers = Answers()
    with running_server(settings) as server:
        agent = Agent(
            server.url,
            key,
            interval=INTERVAL,
            host=HOST,
            queue_path=tmp_path / "agent-queue.db",
            max_backoff=BACKOFF,
            timeout=10.0,
            client_factory=answers.client_factory(),
            sample=counter,
        )
        async with httpx.AsyncClient(base_url=server.url, timeout=15) as client:
            await _wait_ready(client)
            task = asyncio.create_task(agent.run())
            try:
                await _eventually(lambda: agent.sent_points >= 3, "the first points")
                for outage in outages:
                    await _outage(outage, client, key, agent, counter, answers)
                # Sample nothing more, let the queue drain, then stop the agent cleanly.
                counter.paused = True
                produced = counter.produced
                await _eventually(lambda: agent.sent_points >= produced, "the queue to drain")
            finally:
                agent.stop()
                await asyncio.wait_for(task, timeout=10)
            assert agent.sent_points == produced
            assert agent.rejected_points == 0
            assert {answer.status for answer in answers.seen} <= {200, 503}, answers.seen

            series_id, buckets = await _stored_through_the_api(client)

    # Through the API: as many raw points as samples, spanning 0 .. n-1 exactly.
    assert sum(bucket["count"] for bucket in buckets) == produced
    assert min(bucket["min"] for bucket in buckets) == 0
    assert max(bucket["max"] for bucket in buckets) == produced - 1
    assert round(sum(bucket["avg"] * bucket["count"] for bucket in buckets)) == sum(range(produced))
    # In the database: each sample exactly once, in order, each with its own timestamp.
    rows = _stored_rows(private_postgres.url, series_id)
    stamps = [ts for ts, _ in rows]
    assert [int(value) for _, value in rows] == list(range(produced))
    assert len(set(stamps)) == len(stamps)
    assert produced >= 2 * int(OUTAGE / INTERVAL) + 3

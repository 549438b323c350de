"""API fixtures: a real server per test on each back end, and signed-in clients."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from backend.core import Core
from tests.api.server import RunningServer, running_server
from tests.conftest import PASSWORD, Backend


@pytest.fixture
def server(backend: Backend) -> Iterator[RunningServer]:
    with running_server(backend.settings) as running:
        yield running


def _seed(backend: Backend) -> None:
    """The team of users, created through the core like `quarterdeck user create` would."""

    async def run() -> None:
        async with Core.open(backend.settings) as core:
            admin = await core.users.create_first_admin(username="ada", password=PASSWORD)
            from backend.domain.permissions import Role
            from backend.domain.principal import Principal

            actor = Principal.for_user(user_id=admin.id, username="ada", role=Role.ADMIN)
            await core.users.create(actor, username="otto", password=PASSWORD, role="operator")
            await core.users.create(actor, username="vera", password=PASSWORD, role="viewer")

    asyncio.run(run())


@dataclass
class Clients:
    anonymous: httpx.Client
    admin: httpx.Client
    operator: httpx.Client
    viewer: httpx.Client

    def by_role(self, role: str) -> httpx.Client:
        clients: dict[str, httpx.Client] = {
            "anonymous": self.anonymous,
            "admin": self.admin,
            "operator": self.operator,
            "viewer": self.viewer,
        }
        return clients[role]


def sign_in(base_url: str, username: str) -> httpx.Client:
    client = httpx.Client(base_url=base_url, timeout=10)
    response = client.post("/api/v1/auth/login", json={"username": username, "password": PASSWORD})
    response.raise_for_status()
    client.headers["Authorization"] = f"Bearer {response.json()['access_token']}"
    return client


@pytest.fixture
def clients(backend: Backend) -> Iterator[Clients]:
    _seed(backend)
    with running_server(backend.settings) as running:
        made = Clients(
            anonymous=httpx.Client(base_url=running.url, timeout=10),
            admin=sign_in(running.url, "ada"),
            operator=sign_in(running.url, "otto"),
            viewer=sign_in(running.url, "vera"),
        )
        try:
            yield made
        finally:
            for client in (made.anonymous, made.admin, made.operator, made.viewer):
                client.close()

"""The session behind a client: renewed before expiry, after a refusal, and locked out."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from console.client.errors import RateLimited, Unauthenticated
from console.client.local import LocalClient
from console.client.protocol import Client
from console.client.remote import RemoteClient
from console.client.tokens import Tokens
from tests.conftest import PASSWORD
from tests.contract.conftest import Harness

pytestmark = pytest.mark.asyncio


def _tamper(client: Client, **changes: object) -> None:
    """Age or spoil the client's access token, as time or a server restart would."""
    if isinstance(client, LocalClient):
        holder = client._embedded
    else:
        assert isinstance(client, RemoteClient)
        holder = client  # type: ignore[assignment]
    attribute = "tokens" if isinstance(client, LocalClient) else "_tokens"
    tokens = getattr(holder, attribute)
    assert isinstance(tokens, Tokens)
    setattr(holder, attribute, dataclasses.replace(tokens, **changes))


async def test_token_due_is_renewed_once_for_concurrent_calls(harness: Harness) -> None:
    client = harness.client
    before = client.refresh_token
    _tamper(client, renew_at=0.0)
    results = await asyncio.gather(*(client.list_users() for _ in range(5)))
    assert all(users == results[0] for users in results)
    after = client.refresh_token
    assert after not in (None, before)
    assert (await client.me()).username == "ada"  # one rotation: the session lives on
    assert client.refresh_token == after


async def test_refused_access_token_is_renewed_once(harness: Harness) -> None:
    client = harness.client
    before = client.refresh_token
    _tamper(client, access="not-a-token")
    assert [user.username for user in await client.list_users()] == ["ada"]
    assert client.refresh_token not in (None, before)


async def test_ended_session_is_unauthenticated(harness: Harness) -> None:
    client = harness.client
    spent = client.refresh_token
    assert spent is not None
    await client.resume(spent)  # rotates: `spent` is now a used token
    _tamper(client, access="not-a-token", refresh=spent)
    with pytest.raises(Unauthenticated):
        await client.list_users()  # renewing with a rotated token ends the session
    assert client.refresh_token is None


async def test_repeated_failures_lock_the_name_with_retry_after(harness: Harness) -> None:
    client = harness.client
    await client.sign_out()
    for _ in range(5):
        with pytest.raises(Unauthenticated):
            await client.sign_in("ada", "wrong password")
    with pytest.raises(RateLimited) as locked:
        await client.sign_in("ada", PASSWORD)
    assert locked.value.retry_after > 0

"""First administrator, sign-in and sign-out, through either client."""

from __future__ import annotations

import pytest

from console.client.errors import Conflict, Forbidden, Unauthenticated
from console.client.protocol import Client
from console.client.types import ConnectionState, Role
from tests.conftest import PASSWORD
from tests.contract.conftest import Harness

pytestmark = pytest.mark.asyncio


async def test_first_admin_then_sign_in(fresh: Client) -> None:
    if not fresh.embedded:
        # A server's first admin is made on the server (`quarterdeck user create`),
        # never by whoever connects first.
        assert not await fresh.needs_first_admin()
        with pytest.raises(Forbidden):
            await fresh.create_first_admin(username="ada", password=PASSWORD)
        return
    assert await fresh.needs_first_admin()
    me = await fresh.create_first_admin(username="Ada", password=PASSWORD, display_name="Ada L.")
    assert (me.username, me.role, me.kind) == ("ada", Role.ADMIN, "user")
    assert "users:write" in me.permissions
    assert not await fresh.needs_first_admin()
    with pytest.raises(Conflict):
        await fresh.create_first_admin(username="eve", password=PASSWORD)
    assert fresh.refresh_token
    assert fresh.status.state is ConnectionState.LIVE


async def test_wrong_password_does_not_reveal_the_user(harness: Harness) -> None:
    client = harness.client
    await client.sign_out()
    with pytest.raises(Unauthenticated) as wrong_password:
        await client.sign_in("ada", "not the password")
    with pytest.raises(Unauthenticated) as no_such_user:
        await client.sign_in("nobody", "not the password")
    assert wrong_password.value.message == no_such_user.value.message
    me = await client.sign_in("ada", PASSWORD)
    assert me.username == "ada"


async def test_signed_out_client_is_refused(harness: Harness) -> None:
    client = harness.client
    await client.sign_out()
    assert client.refresh_token is None
    with pytest.raises(Unauthenticated):
        await client.list_users()


async def test_resume_with_refresh_token_rotates_it(harness: Harness) -> None:
    client = harness.client
    first = client.refresh_token
    assert first is not None
    me = await client.resume(first)
    assert me.username == "ada"
    assert client.refresh_token not in (None, first)
    with pytest.raises(Unauthenticated):
        await client.resume(first)  # a rotated token is spent (and ends the session)

"""Users: the admin manages accounts; a viewer may only look."""

from __future__ import annotations

import pytest

from console.client.errors import Conflict, Forbidden, InvalidInput, NotFound, Unauthenticated
from console.client.types import Role
from tests.conftest import PASSWORD
from tests.contract.conftest import Harness

pytestmark = pytest.mark.asyncio


async def test_users_crud(harness: Harness) -> None:
    client = harness.client
    created = await client.create_user(
        username="Otto", password=PASSWORD, role="operator", display_name="Otto O."
    )
    assert (created.username, created.role, created.display_name) == (
        "otto",
        Role.OPERATOR,
        "Otto O.",
    )
    assert await client.get_user(created.id) == created
    names = [user.username for user in await client.list_users()]
    assert names == ["ada", "otto"]
    with pytest.raises(Conflict):
        await client.create_user(username="otto", password=PASSWORD, role="viewer")
    with pytest.raises(InvalidInput):
        await client.create_user(username="x", password="short", role="viewer")

    updated = await client.update_user(created.id, role="viewer", display_name="O.", disabled=True)
    assert (updated.role, updated.display_name, updated.disabled) == (Role.VIEWER, "O.", True)
    assert await client.get_user(created.id) == updated

    await client.delete_user(created.id)
    with pytest.raises(NotFound):
        await client.get_user(created.id)


async def test_viewer_may_read_but_not_write(harness: Harness) -> None:
    client = harness.client
    ada = await client.me()
    await client.create_user(username="vera", password=PASSWORD, role="viewer")
    await client.sign_out()
    me = await client.sign_in("vera", PASSWORD)
    assert me.role is Role.VIEWER
    assert "users:write" not in me.permissions
    assert [user.username for user in await client.list_users()] == ["ada", "vera"]
    with pytest.raises(Forbidden):
        await client.create_user(username="eve", password=PASSWORD, role="admin")
    with pytest.raises(Forbidden):
        await client.update_user(ada.id or 0, disabled=True)
    with pytest.raises(Forbidden):
        await client.delete_user(ada.id or 0)
    with pytest.raises(Forbidden):
        await client.reset_password(ada.id or 0, new="taken over at last")
    own = await client.get_user(me.id or 0)
    assert own.username == "vera"


async def test_own_password_change(harness: Harness) -> None:
    client = harness.client
    new = "a brand new passphrase"
    with pytest.raises(InvalidInput):
        await client.change_own_password(current="wrong password", new=new)
    with pytest.raises(InvalidInput):  # own password: only with the current one
        await client.reset_password((await client.me()).id or 0, new=new)
    await client.change_own_password(current=PASSWORD, new=new)
    assert (await client.me()).username == "ada"  # this session stays signed in
    await client.sign_out()
    with pytest.raises(Unauthenticated):
        await client.sign_in("ada", PASSWORD)
    await client.sign_in("ada", new)

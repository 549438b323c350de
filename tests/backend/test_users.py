"""Users: creation, updates, passwords, and the rules that protect the last admin."""

from __future__ import annotations

import pytest

from backend.core import Core
from backend.domain.errors import Conflict, Forbidden, InvalidInput, NotFound
from backend.domain.principal import Principal
from tests.backend.conftest import PASSWORD, Team

pytestmark = pytest.mark.asyncio


async def test_first_admin_only_once(core: Core) -> None:
    assert await core.users.needs_first_admin()
    admin = await core.users.create_first_admin(username="Root", password=PASSWORD)
    assert admin.username == "root"
    assert admin.role.value == "admin"
    assert not await core.users.needs_first_admin()
    with pytest.raises(Conflict):
        await core.users.create_first_admin(username="second", password=PASSWORD)


async def test_create_list_get(core: Core, team: Team) -> None:
    created = await core.users.create(
        team.admin, username="Bob", password=PASSWORD, role="viewer", display_name=" Bob B "
    )
    assert created.username == "bob"
    assert created.display_name == "Bob B"
    names = [user.username for user in await core.users.list(team.viewer)]
    assert names == sorted(["ada", "otto", "vera", "bob"])
    assert (await core.users.get(team.viewer, created.id)).username == "bob"


async def test_usernames_are_case_insensitive(core: Core, team: Team) -> None:
    with pytest.raises(Conflict, match="taken"):
        await core.users.create(team.admin, username="OTTO", password=PASSWORD, role="viewer")


@pytest.mark.parametrize(
    ("username", "password", "role", "field"),
    [
        ("x", PASSWORD, "viewer", "username"),
        ("has space", PASSWORD, "viewer", "username"),
        ("", PASSWORD, "viewer", "username"),
        ("newbie", "short", "viewer", "password"),
        ("newbie", PASSWORD, "superuser", "role"),
    ],
)
async def test_bad_input_creates_nothing(
    core: Core, team: Team, username: str, password: str, role: str, field: str
) -> None:
    before = await core.users.list(team.admin)
    with pytest.raises(InvalidInput) as caught:
        await core.users.create(team.admin, username=username, password=password, role=role)
    assert caught.value.details["field"] == field
    assert await core.users.list(team.admin) == before


async def test_update_role_display_name_disabled(core: Core, team: Team) -> None:
    assert team.viewer.user_id is not None
    updated = await core.users.update(
        team.admin, team.viewer.user_id, role="operator", display_name="Vera V", disabled=True
    )
    assert (updated.role.value, updated.display_name, updated.disabled) == (
        "operator",
        "Vera V",
        True,
    )


async def test_last_admin_is_protected(core: Core, team: Team) -> None:
    assert team.admin.user_id is not None
    assert team.operator.user_id is not None
    with pytest.raises(Conflict):
        await core.users.update(team.admin, team.admin.user_id, role="viewer")
    with pytest.raises(Conflict):
        await core.users.delete(team.admin, team.admin.user_id)
    # Another admin can't remove the only *enabled* admin either.
    await core.users.update(team.admin, team.operator.user_id, role="admin", disabled=True)
    other = Principal.for_user(user_id=team.operator.user_id, username="otto", role=team.admin.role)  # type: ignore[arg-type]
    with pytest.raises(Conflict, match="administrator"):
        await core.users.delete(other, team.admin.user_id)
    assert (await core.users.get(team.admin, team.admin.user_id)).role.value == "admin"


async def test_delete(core: Core, team: Team) -> None:
    assert team.viewer.user_id is not None
    await core.users.delete(team.admin, team.viewer.user_id)
    with pytest.raises(NotFound):
        await core.users.get(team.admin, team.viewer.user_id)
    with pytest.raises(NotFound):
        await core.users.delete(team.admin, team.viewer.user_id)


async def test_change_own_password_needs_current(core: Core, team: Team) -> None:
    with pytest.raises(InvalidInput, match="current password"):
        await core.users.change_own_password(
            team.viewer, current="wrong password", new="new password 1"
        )
    await core.users.change_own_password(team.viewer, current=PASSWORD, new="new password 1")
    pair = await core.auth.login("vera", "new password 1")
    assert pair.access_token


async def test_reset_password_ends_sessions(core: Core, team: Team) -> None:
    assert team.viewer.user_id is not None
    pair = await core.auth.login("vera", PASSWORD)
    await core.users.reset_password(team.admin, team.viewer.user_id, new="brand new secret")
    from backend.domain.errors import Unauthenticated

    with pytest.raises(Unauthenticated):
        await core.auth.refresh(pair.refresh_token)
    with pytest.raises(Unauthenticated):
        await core.auth.authenticate(pair.access_token)
    assert (await core.auth.login("vera", "brand new secret")).access_token


async def test_non_admins_cannot_manage_users(core: Core, team: Team) -> None:
    assert team.viewer.user_id is not None
    for who in (team.operator, team.viewer):
        with pytest.raises(Forbidden):
            await core.users.create(who, username="sneaky", password=PASSWORD, role="admin")
        with pytest.raises(Forbidden):
            await core.users.update(who, team.viewer.user_id, role="admin")
    names = [user.username for user in await core.users.list(team.admin)]
    assert "sneaky" not in names

"""Sign-in, token rotation and reuse detection, lockout, API keys."""

from __future__ import annotations

import asyncio

import pytest

from backend.core import Core
from backend.domain.errors import InvalidInput, NotFound, RateLimited, Unauthenticated
from backend.domain.permissions import Permission, Role
from backend.domain.principal import Principal
from backend.services.auth import principal_cache
from backend.services.crypto import Keys
from tests.backend.conftest import PASSWORD, Team

pytestmark = pytest.mark.asyncio


async def test_login_and_authenticate(core: Core, team: Team) -> None:
    pair = await core.auth.login("Otto", PASSWORD, source="10.1.2.3")
    assert pair.token_type == "bearer"
    assert pair.expires_in == 15 * 60
    principal = await core.auth.authenticate(pair.access_token)
    assert (principal.name, principal.user_id) == ("otto", team.operator.user_id)
    assert principal.can(Permission.METRICS_WRITE)
    assert not principal.can(Permission.USERS_WRITE)


async def test_wrong_password_and_unknown_user_look_the_same(core: Core, team: Team) -> None:
    with pytest.raises(Unauthenticated) as wrong:
        await core.auth.login("otto", "not the password")
    with pytest.raises(Unauthenticated) as unknown:
        await core.auth.login("nobody", "not the password")
    assert wrong.value.message == unknown.value.message


async def test_refresh_rotates_and_reuse_revokes_family(core: Core, team: Team) -> None:
    first = await core.auth.login("vera", PASSWORD)
    second = await core.auth.refresh(first.refresh_token)
    assert second.refresh_token != first.refresh_token
    assert (await core.auth.authenticate(second.access_token)).name == "vera"
    # The rotated token is presented again: a replay. The whole session ends.
    with pytest.raises(Unauthenticated, match="used twice"):
        await core.auth.refresh(first.refresh_token)
    with pytest.raises(Unauthenticated):
        await core.auth.refresh(second.refresh_token)
    with pytest.raises(Unauthenticated):
        await core.auth.authenticate(second.access_token)
    # Another session of the same user is untouched.
    other = await core.auth.login("vera", PASSWORD)
    assert (await core.auth.refresh(other.refresh_token)).access_token


async def test_logout_ends_the_session(core: Core, team: Team) -> None:
    pair = await core.auth.login("vera", PASSWORD)
    principal = await core.auth.authenticate(pair.access_token)
    await core.auth.logout(principal)
    with pytest.raises(Unauthenticated):
        await core.auth.authenticate(pair.access_token)
    with pytest.raises(Unauthenticated):
        await core.auth.refresh(pair.refresh_token)


async def test_tampered_and_foreign_tokens_are_rejected(core: Core, team: Team) -> None:
    pair = await core.auth.login("vera", PASSWORD)
    head, body, signature = pair.access_token.split(".")
    flipped = signature[:-2] + ("AA" if signature[-2:] != "AA" else "BB")
    with pytest.raises(Unauthenticated):
        await core.auth.authenticate(f"{head}.{body}.{flipped}")
    foreign = Keys(b"another deployment's key").issue_access_token(
        user_id=team.viewer.user_id or 0, session_id="x", ttl=60
    )
    with pytest.raises(Unauthenticated):
        await core.auth.authenticate(foreign)
    expired = Keys(core.config.resolve_secret_key()).issue_access_token(
        user_id=team.viewer.user_id or 0, session_id="x", ttl=-10
    )
    with pytest.raises(Unauthenticated, match="expired"):
        await core.auth.authenticate(expired)
    with pytest.raises(Unauthenticated):
        await core.auth.refresh("not-a-token")


async def test_disabled_user_cannot_sign_in(core: Core, team: Team) -> None:
    assert team.viewer.user_id is not None
    pair = await core.auth.login("vera", PASSWORD)
    await core.users.update(team.admin, team.viewer.user_id, disabled=True)
    with pytest.raises(Unauthenticated):
        await core.auth.login("vera", PASSWORD)
    with pytest.raises(Unauthenticated):
        await core.auth.authenticate(pair.access_token)


async def test_lockout_after_repeated_failures(core: Core, team: Team) -> None:
    for _ in range(5):
        with pytest.raises(Unauthenticated):
            await core.auth.login("otto", "wrong password")
    with pytest.raises(RateLimited, match="locked") as locked:
        await core.auth.login("otto", PASSWORD)
    assert locked.value.retry_after > 0
    # An unknown name locks the same way, so a lock reveals nothing.
    for _ in range(5):
        with pytest.raises(Unauthenticated):
            await core.auth.login("ghost", "wrong password")
    with pytest.raises(RateLimited, match="locked"):
        await core.auth.login("ghost", "wrong password")
    # Others are unaffected.
    assert (await core.auth.login("vera", PASSWORD)).access_token


async def test_per_source_rate_limit(core: Core, team: Team) -> None:
    await core.settings.write(
        team.admin, "auth.login_rate_per_minute", 3, expected_version=0, reason="test"
    )
    for _ in range(3):
        await core.auth.login("vera", PASSWORD, source="192.0.2.7")
    with pytest.raises(RateLimited, match="address"):
        await core.auth.login("vera", PASSWORD, source="192.0.2.7")
    assert (await core.auth.login("vera", PASSWORD, source="192.0.2.8")).access_token


async def test_api_key_lifecycle(core: Core, team: Team) -> None:
    created = await core.api_keys.create(team.operator, name="agent-1", scopes=["metrics:write"])
    assert created.secret.startswith("qd_")
    principal = await core.auth.authenticate(created.secret)
    assert principal.kind == "api_key"
    assert principal.permissions == frozenset({Permission.METRICS_WRITE})
    listed = await core.api_keys.list(team.operator)
    assert [key.name for key in listed] == ["agent-1"]
    assert listed[0].last_used_at is not None
    # The secret is never stored or listed in the clear.
    assert created.secret not in repr(listed)
    await core.api_keys.revoke(team.operator, created.key.id)
    with pytest.raises(Unauthenticated, match="revoked"):
        await core.auth.authenticate(created.secret)


async def test_api_key_bad_input(core: Core, team: Team) -> None:
    with pytest.raises(InvalidInput, match="scope"):
        await core.api_keys.create(team.operator, name="k", scopes=[])
    with pytest.raises(InvalidInput, match="unknown"):
        await core.api_keys.create(team.operator, name="k", scopes=["root:all"])
    with pytest.raises(InvalidInput, match="more than its owner"):
        await core.api_keys.create(team.operator, name="k", scopes=["users:write"])
    with pytest.raises(InvalidInput, match="name"):
        await core.api_keys.create(team.operator, name="  ", scopes=["metrics:write"])
    assert await core.api_keys.list(team.operator) == []
    with pytest.raises(Unauthenticated):
        await core.auth.authenticate("qd_deadbeef0000_not-a-real-secret")


async def test_api_keys_are_private_to_their_owner(core: Core, team: Team) -> None:
    mine = await core.api_keys.create(team.admin, name="admin-key", scopes=["metrics:read"])
    with pytest.raises(NotFound):
        await core.api_keys.revoke(team.operator, mine.key.id)
    assert await core.api_keys.list(team.operator) == []
    assert [key.name for key in await core.api_keys.list(team.admin, all_users=True)] == [
        "admin-key"
    ]


async def test_api_key_bounded_by_owner_role_now(core: Core, team: Team) -> None:
    assert team.operator.user_id is not None
    created = await core.api_keys.create(team.operator, name="k", scopes=["metrics:write"])
    await core.users.update(team.admin, team.operator.user_id, role="viewer")
    principal = await core.auth.authenticate(created.secret)
    assert principal.permissions == frozenset()


async def _cached(core: Core, token: str) -> Principal:
    """Authenticate until the process's principal cache keeps `token` (its listener is up)."""
    cache = principal_cache(core.ctx)
    for _ in range(200):
        principal = await core.auth.authenticate(token)
        if cache.get(cache.key(token)) is not None:
            return principal
        await asyncio.sleep(0.01)
    raise AssertionError("the principal cache never kept the token")


@pytest.mark.parametrize("change", ["disable", "demote", "delete", "reset", "own password"])
async def test_an_account_change_applies_to_remembered_credentials_at_once(
    core: Core, team: Team, change: str
) -> None:
    """No waiting for the bus listener: the next request already sees the change."""
    pair = await core.auth.login("otto", PASSWORD)
    otto = await _cached(core, pair.access_token)
    assert otto.user_id is not None
    assert otto.role == Role.OPERATOR
    if change == "disable":
        await core.users.update(team.admin, otto.user_id, disabled=True)
    elif change == "demote":
        await core.users.update(team.admin, otto.user_id, role="viewer")
        again = await core.auth.authenticate(pair.access_token)
        assert again.role == Role.VIEWER
        assert not again.can(Permission.METRICS_WRITE)
        return
    elif change == "delete":
        await core.users.delete(team.admin, otto.user_id)
    elif change == "reset":
        await core.users.reset_password(team.admin, otto.user_id, new="another-Passw0rd")
    else:
        other = await core.auth.login("otto", PASSWORD)
        await _cached(core, other.access_token)
        await core.users.change_own_password(otto, current=PASSWORD, new="another-Passw0rd")
        # The session that changed it stays signed in; the others end.
        assert (await core.auth.authenticate(pair.access_token)).name == "otto"
        pair = other
    with pytest.raises(Unauthenticated):
        await core.auth.authenticate(pair.access_token)

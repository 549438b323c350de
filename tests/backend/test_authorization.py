"""Every service method against every role: allowed, or Forbidden and nothing changed.

The matrix is data: one row per operation with the roles that may perform
it. Each operation prepares its own target as the admin, so rows do not
depend on each other and the matrix runs on one core per role and back end.
"""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest

from backend.core import Core
from backend.domain.errors import Forbidden
from backend.domain.principal import Principal
from tests.backend.conftest import PASSWORD, Team

pytestmark = pytest.mark.asyncio

Operation = Callable[[Core, Team, Principal], Awaitable[Any]]
_names = itertools.count()


async def _throwaway_user(core: Core, team: Team) -> int:
    user = await core.users.create(
        team.admin, username=f"temp{next(_names)}", password=PASSWORD, role="viewer"
    )
    return user.id


async def _own_key(core: Core, who: Principal) -> int:
    if who.role is None or who.role.value == "viewer":
        # A viewer cannot have keys; revoke then targets an admin's key (must fail).
        return -1
    created = await core.api_keys.create(who, name=f"k{next(_names)}", scopes=["metrics:read"])
    return created.key.id


async def _version(core: Core, team: Team, key: str) -> int:
    return (await core.settings.get(team.admin, key)).version


def _export(values: dict[str, Any]) -> dict[str, Any]:
    return {"format": "quarterdeck.settings", "version": 1, "settings": values}


async def _set_interval(core: Core, team: Team, who: Principal) -> Any:
    version = await _version(core, team, "collector.interval_seconds")
    return await core.settings.write(
        who, "collector.interval_seconds", 5 + version, expected_version=version
    )


async def _set_secret(core: Core, team: Team, who: Principal) -> Any:
    version = await _version(core, team, "notify.smtp_password")
    return await core.settings.write(
        who, "notify.smtp_password", f"s3cret-{version}", expected_version=version
    )


async def _rollback_interval(core: Core, team: Team, who: Principal) -> Any:
    await _set_interval(core, team, team.admin)
    return await core.settings.rollback(who, "collector.interval_seconds", version=0)


async def _import_plain(core: Core, team: Team, who: Principal) -> Any:
    return await core.settings.import_(
        who, _export({"hosts.down_after_missed": 3 + next(_names) % 5 + 1})
    )


async def _import_secret(core: Core, team: Team, who: Principal) -> Any:
    return await core.settings.import_(
        who, _export({"notify.smtp_password": f"imported-{next(_names)}"})
    )


async def _revoke_own_key(core: Core, team: Team, who: Principal) -> Any:
    key_id = await _own_key(core, who)
    if key_id == -1:
        key_id = await _own_key(core, team.admin)
    return await core.api_keys.revoke(who, key_id)


async def _update(core: Core, team: Team, who: Principal) -> Any:
    return await core.users.update(who, await _throwaway_user(core, team), display_name="x")


async def _delete(core: Core, team: Team, who: Principal) -> Any:
    return await core.users.delete(who, await _throwaway_user(core, team))


async def _reset(core: Core, team: Team, who: Principal) -> Any:
    return await core.users.reset_password(
        who, await _throwaway_user(core, team), new="another password"
    )


@dataclass(frozen=True)
class Row:
    name: str
    call: Operation
    allowed: frozenset[str]


ALL = frozenset({"admin", "operator", "viewer"})
STAFF = frozenset({"admin", "operator"})
ADMIN = frozenset({"admin"})

MATRIX: list[Row] = [
    Row("users.list", lambda c, t, w: c.users.list(w), ALL),
    Row("users.get other", lambda c, t, w: c.users.get(w, t.admin.user_id or 0), ALL),
    Row(
        "users.create",
        lambda c, t, w: c.users.create(
            w, username=f"new{next(_names)}", password=PASSWORD, role="viewer"
        ),
        ADMIN,
    ),
    Row(
        "users.update",
        _update,
        ADMIN,
    ),
    Row("users.delete", _delete, ADMIN),
    Row("users.reset_password", _reset, ADMIN),
    Row(
        "users.change_own_password",
        lambda c, t, w: c.users.change_own_password(w, current=PASSWORD, new=PASSWORD),
        ALL,
    ),
    Row("api_keys.list own", lambda c, t, w: c.api_keys.list(w), STAFF),
    Row("api_keys.list all", lambda c, t, w: c.api_keys.list(w, all_users=True), ADMIN),
    Row(
        "api_keys.create",
        lambda c, t, w: c.api_keys.create(w, name="k", scopes=["metrics:read"]),
        STAFF,
    ),
    Row("api_keys.revoke own", _revoke_own_key, STAFF),
    Row("settings.list", lambda c, t, w: c.settings.list(w), ALL),
    Row("settings.get", lambda c, t, w: c.settings.get(w, "notify.smtp_password"), ALL),
    Row("settings.history", lambda c, t, w: c.settings.history(w, "auth.session_hours"), ALL),
    Row("settings.write", _set_interval, STAFF),
    Row("settings.write secret", _set_secret, ADMIN),
    Row("settings.rollback", _rollback_interval, STAFF),
    Row("settings.export", lambda c, t, w: c.settings.export(w), ALL),
    Row(
        "settings.export with secrets",
        lambda c, t, w: c.settings.export(w, include_secrets=True),
        ADMIN,
    ),
    Row("settings.import", _import_plain, STAFF),
    Row("settings.import secret", _import_secret, ADMIN),
    Row("audit.list", lambda c, t, w: c.audit.list(w), STAFF),
    Row("audit.verify", lambda c, t, w: c.audit.verify(w), STAFF),
]


async def _audit_size(core: Core, team: Team) -> int:
    return len((await core.audit.list(team.admin, limit=1000)).entries)


@pytest.mark.parametrize("role", ["admin", "operator", "viewer"])
async def test_matrix(core: Core, team: Team, role: str) -> None:
    who = team.by_role(role)
    mismatches: list[str] = []
    for row in MATRIX:
        expected = role in row.allowed
        # The admin's own preparation writes audit entries; count after it.
        try:
            before = await _audit_size(core, team)
            await row.call(core, team, who)
            if not expected:
                mismatches.append(f"{row.name}: {role} was allowed")
        except Forbidden:
            if expected:
                mismatches.append(f"{row.name}: {role} was refused")
            elif await _audit_size(core, team) > before + 1:
                # Preparation (a throwaway user) may add one entry; the refused call adds none.
                mismatches.append(f"{row.name}: a refused call left an audit entry")
    assert mismatches == []

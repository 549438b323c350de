"""What the users, auth and API key services hand back."""

from __future__ import annotations

import re

from pydantic import BaseModel

from backend.domain.errors import InvalidInput
from backend.domain.permissions import Role
from backend.domain.principal import Principal

USERNAME = re.compile(r"^[a-z0-9][a-z0-9._@-]{1,63}$")
MIN_PASSWORD = 8
MAX_PASSWORD = 1024


def normalize_username(username: str) -> str:
    """Usernames compare case-insensitively, so "Alice" and "alice" are one user."""
    return username.strip().lower()


def check_username(username: str) -> str:
    name = normalize_username(username)
    if not USERNAME.match(name):
        raise InvalidInput(
            "a username is 2 to 64 letters, digits, '.', '_', '-' or '@', "
            "starting with a letter or digit",
            details={"field": "username"},
        )
    return name


def check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise InvalidInput(
            f"a password needs at least {MIN_PASSWORD} characters", details={"field": "password"}
        )
    if len(password) > MAX_PASSWORD:
        raise InvalidInput("that password is too long", details={"field": "password"})


def check_role(role: str) -> Role:
    try:
        return Role(role)
    except ValueError:
        raise InvalidInput(
            f"unknown role {role!r}; choose one of {', '.join(r.value for r in Role)}",
            details={"field": "role"},
        ) from None


def check_display_name(display_name: str) -> str:
    name = display_name.strip()
    if len(name) > 200:
        raise InvalidInput(
            "a display name is at most 200 characters", details={"field": "display_name"}
        )
    return name


class UserView(BaseModel):
    id: int
    username: str
    display_name: str
    role: Role
    disabled: bool
    created_at: float
    updated_at: float


class MeView(BaseModel):
    id: int | None
    username: str
    role: Role | None
    permissions: list[str]
    kind: str


def me_view(principal: Principal) -> MeView:
    """What `GET /me` answers; shared so the embedded console answers the same."""
    return MeView(
        id=principal.user_id,
        username=principal.name,
        role=principal.role,
        permissions=sorted(permission.value for permission in principal.permissions),
        kind=principal.kind,
    )


class TokenPair(BaseModel):
    access_token: str
    refresh_token: str
    token_type: str = "bearer"
    expires_in: int
    """Seconds until the access token expires."""


class ApiKeyView(BaseModel):
    id: int
    user_id: int
    name: str
    prefix: str
    scopes: list[str]
    created_at: float
    last_used_at: float | None
    revoked_at: float | None


class CreatedApiKey(BaseModel):
    key: ApiKeyView
    secret: str
    """The full key; shown this once and never stored in the clear."""

"""Request bodies of the HTTP API, shared with the console's remote client.

Only pydantic here (no FastAPI), so `console.client` can import these to
build exactly the bodies the server validates. Responses reuse the domain
views (`backend.domain.*`). Unknown fields are rejected, so a typo in a
script is an error, not a silently ignored field.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from backend.domain.monitoring import PointIn


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LoginIn(Body):
    username: str = Field(max_length=200)
    password: str = Field(max_length=1024)


class RefreshIn(Body):
    refresh_token: str = Field(max_length=200)


class UserCreateIn(Body):
    username: str = Field(max_length=200)
    password: str = Field(max_length=1024)
    role: str = Field(max_length=32)
    display_name: str = Field(default="", max_length=200)


class UserPatchIn(Body):
    role: str | None = Field(default=None, max_length=32)
    display_name: str | None = Field(default=None, max_length=200)
    disabled: bool | None = None


class PasswordIn(Body):
    new_password: str = Field(max_length=1024)
    current_password: str | None = Field(default=None, max_length=1024)
    """Required when changing one's own password."""


class ApiKeyCreateIn(Body):
    name: str = Field(max_length=200)
    scopes: list[str] = Field(max_length=50)


class SettingWriteIn(Body):
    value: Any
    expected_version: int = Field(ge=0)
    reason: str = Field(default="", max_length=1000)


class RollbackIn(Body):
    version: int = Field(ge=0)
    reason: str = Field(default="", max_length=1000)
    expected_version: int | None = Field(default=None, ge=0)


class MetricsIn(Body):
    points: list[PointIn] = Field(max_length=50_000)

"""Request bodies of the HTTP API, shared with the console's remote client.

Only pydantic here (no FastAPI), so `console.client` can import these to
build exactly the bodies the server validates. Responses reuse the domain
views (`backend.domain.*`). Unknown fields are rejected, so a typo in a
script is an error, not a silently ignored field.
"""

from __future__ import annotations

from typing import Annotated, Any, cast

from pydantic import BaseModel, ConfigDict, Field, PlainValidator, ValidationError

from backend.domain.monitoring import MAX_BATCH, CheckedPoints, PointFields, PointIn, check_points
from backend.domain.permissions import Permission, Role

MAX_ID = 2**31 - 1
"""Ids and versions are 32-bit integer columns on both back ends: a larger
number is refused as invalid input before it reaches the database (where it
would be an overflow, not a clean "not found")."""


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
    role: Role
    display_name: str = Field(default="", max_length=200)


class UserPatchIn(Body):
    role: Role | None = None
    display_name: str | None = Field(default=None, max_length=200)
    disabled: bool | None = None


class PasswordIn(Body):
    new_password: str = Field(max_length=1024)
    current_password: str | None = Field(default=None, max_length=1024)
    """Required when changing one's own password."""


class ApiKeyCreateIn(Body):
    name: str = Field(max_length=200)
    scopes: list[Permission] = Field(max_length=50)


class SettingWriteIn(Body):
    value: Any
    expected_version: int = Field(ge=0, le=MAX_ID)
    reason: str = Field(default="", max_length=1000)


class RollbackIn(Body):
    version: int = Field(ge=0, le=MAX_ID)
    reason: str = Field(default="", max_length=1000)
    expected_version: int | None = Field(default=None, ge=0, le=MAX_ID)


class PointBody(PointIn):
    """A pushed point; an unknown field is refused here as in every other body."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class MetricsIn(Body):
    points: list[PointBody] = Field(max_length=MAX_BATCH)


def _checked_metrics(body: Any) -> CheckedPoints:
    """A `MetricsIn` body's points, accepted and refused exactly as `MetricsIn` would.

    Building a `PointBody` per point cost most of an ingest request's time;
    `check_points` validates the batch in bulk with the same constraints.
    Whatever it refuses, and any body not shaped `{"points": [...]}`, goes
    through `MetricsIn` itself, so an invalid body fails with that model's
    own errors (locations, messages and types), as it did before.
    """
    points = body.get("points") if type(body) is dict and len(body) == 1 else None
    if type(points) is list and len(points) <= MAX_BATCH:
        try:
            return check_points(points, PointBody)
        except ValidationError:
            pass  # MetricsIn reports it, located in the body
    checked = MetricsIn.model_validate(body, from_attributes=True)
    return CheckedPoints(cast("PointFields", vars(point)) for point in checked.points)


MetricsBody = Annotated[
    CheckedPoints, PlainValidator(_checked_metrics, json_schema_input_type=MetricsIn)
]
"""The ingest body: documented as `MetricsIn`, validated in bulk (`_checked_metrics`)."""


class ErrorInfo(BaseModel):
    code: str
    """Machine-readable: invalid, unauthenticated, forbidden, not_found, conflict, ..."""
    message: str
    """For a person: what went wrong and, where it helps, what to do."""
    details: dict[str, Any]
    """Specifics, such as the offending field or the current version."""


class ErrorBody(BaseModel):
    """Every failure's body: `{"error": {"code", "message", "details"}}`."""

    error: ErrorInfo

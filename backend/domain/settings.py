"""Run-time settings, declared once as data.

The registry drives validation in the service, the JSON schema the API
publishes and the editors the configuration panel builds. Adding a setting
is adding one `SettingSpec` here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel

from backend.domain.errors import InvalidInput

SettingType = Literal["int", "float", "bool", "str", "choice", "secret"]


@dataclass(frozen=True, slots=True)
class SettingSpec:
    key: str
    type: SettingType
    default: Any
    description: str
    category: str
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] = ()
    unit: str = ""
    restart_required: bool = False
    max_length: int = 1000

    @property
    def secret(self) -> bool:
        return self.type == "secret"

    def validate(self, value: Any) -> Any:
        """The value in canonical form, or `InvalidInput` naming what is wrong."""
        problem = self.problem(value)
        if problem:
            raise InvalidInput(
                f"{self.key}: {problem}", details={"key": self.key, "problem": problem}
            )
        if self.type == "float":
            return float(value)
        return value

    def problem(self, value: Any) -> str | None:
        """What is wrong with `value`, in words a person can act on; None when it is valid.

        Public so the console checks a field as it is typed with this same rule
        (through `console.client.rules`), never a copy of it.
        """
        if self.type in ("int", "float"):
            wrong_kind = isinstance(value, bool) or not isinstance(value, int | float)
            if wrong_kind or (self.type == "int" and isinstance(value, float)):
                return f"expected {'an integer' if self.type == 'int' else 'a number'}"
            number = float(value)
            if not math.isfinite(number):
                return "expected a finite number"
            if self.minimum is not None and number < self.minimum:
                return f"must be at least {self.minimum:g}"
            if self.maximum is not None and number > self.maximum:
                return f"must be at most {self.maximum:g}"
            return None
        if self.type == "bool":
            return None if isinstance(value, bool) else "expected true or false"
        if not isinstance(value, str):
            return "expected text"
        if len(value) > self.max_length:
            return f"must be at most {self.max_length} characters"
        if self.type == "choice" and value not in self.choices:
            return f"must be one of {', '.join(self.choices)}"
        return None

    def schema(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "type": self.type,
            "description": self.description,
            "category": self.category,
            "secret": self.secret,
            "restart_required": self.restart_required,
            "unit": self.unit,
            "default": None if self.secret else self.default,
        }
        if self.minimum is not None:
            out["minimum"] = self.minimum
        if self.maximum is not None:
            out["maximum"] = self.maximum
        if self.choices:
            out["choices"] = list(self.choices)
        if self.type in ("str", "secret"):
            out["max_length"] = self.max_length
        return out


DAY_HOURS = 24

SETTINGS: tuple[SettingSpec, ...] = (
    SettingSpec(
        "collector.interval_seconds", "int", 1,
        "How often the local collector and agents sample their host.",
        "Monitoring", minimum=1, maximum=3600, unit="s",
    ),
    SettingSpec(
        "hosts.down_after_missed", "int", 3,
        "A host is down after this many sampling intervals without a report.",
        "Monitoring", minimum=1, maximum=100, unit="intervals",
    ),
    SettingSpec(
        "retention.raw_hours", "int", 7 * DAY_HOURS,
        "How long raw samples are kept.",
        "Retention", minimum=1, maximum=365 * DAY_HOURS, unit="h",
    ),
    SettingSpec(
        "retention.1m_days", "int", 30,
        "How long 1-minute rollups are kept.",
        "Retention", minimum=1, maximum=3650, unit="d",
    ),
    SettingSpec(
        "retention.10m_days", "int", 180,
        "How long 10-minute rollups are kept.",
        "Retention", minimum=1, maximum=3650, unit="d",
    ),
    SettingSpec(
        "retention.1h_days", "int", 730,
        "How long 1-hour rollups are kept.",
        "Retention", minimum=1, maximum=3650, unit="d",
    ),
    SettingSpec(
        "auth.access_token_minutes", "int", 15,
        "Lifetime of an access token; clients refresh before it ends.",
        "Security", minimum=1, maximum=24 * 60, unit="min",
    ),
    SettingSpec(
        "auth.session_hours", "int", 12,
        "Session lifetime: a sign-in is valid this long, however often it is refreshed.",
        "Security", minimum=1, maximum=90 * DAY_HOURS, unit="h",
    ),
    SettingSpec(
        "auth.lockout_threshold", "int", 5,
        "Failed sign-ins in a row that lock an account.",
        "Security", minimum=1, maximum=100,
    ),
    SettingSpec(
        "auth.lockout_minutes", "int", 15,
        "How long an account stays locked after too many failed sign-ins.",
        "Security", minimum=1, maximum=24 * 60, unit="min",
    ),
    SettingSpec(
        "auth.login_rate_per_minute", "int", 30,
        "Sign-in attempts allowed per minute from one address.",
        "Security", minimum=1, maximum=10_000,
    ),
    SettingSpec(
        "api.requests_per_minute", "int", 6000,
        "API requests allowed per minute for one user or API key, across all "
        "server instances (0: unlimited).",
        "Security", minimum=0, maximum=1_000_000, unit="req/min",
    ),
    SettingSpec(
        "notify.smtp_host", "str", "",
        "Mail relay used for alert notifications (empty: mail disabled).",
        "Notifications", max_length=255,
    ),
    SettingSpec(
        "notify.smtp_port", "int", 587,
        "Port of the mail relay.", "Notifications", minimum=1, maximum=65535,
    ),
    SettingSpec(
        "notify.smtp_security", "choice", "starttls",
        "How the connection to the mail relay is protected.",
        "Notifications", choices=("none", "starttls", "tls"),
    ),
    SettingSpec(
        "notify.smtp_username", "str", "",
        "User name for the mail relay.", "Notifications", max_length=255,
    ),
    SettingSpec(
        "notify.smtp_password", "secret", "",
        "Password for the mail relay; stored encrypted.", "Notifications", max_length=1000,
    ),
    SettingSpec(
        "notify.from_address", "str", "quarterdeck@localhost",
        "Sender address of notification mail.", "Notifications", max_length=255,
    ),
)  # fmt: skip

REGISTRY: dict[str, SettingSpec] = {spec.key: spec for spec in SETTINGS}


def spec_for(key: str) -> SettingSpec:
    from backend.domain.errors import NotFound  # noqa: PLC0415

    try:
        return REGISTRY[key]
    except KeyError:
        raise NotFound(f"there is no setting {key!r}", details={"key": key}) from None


MASK = "********"


class SettingView(BaseModel):
    key: str
    value: Any
    """The value, or None for a secret the caller may not see (see `is_set`)."""
    version: int
    """0 while the setting still has its default."""
    masked: bool
    is_set: bool
    updated_at: float | None
    updated_by: str | None
    spec: dict[str, Any]


class SettingVersionView(BaseModel):
    key: str
    version: int
    value: Any
    masked: bool
    actor: str
    reason: str
    created_at: float


class SettingChange(BaseModel):
    key: str
    old: Any
    new: Any
    masked: bool

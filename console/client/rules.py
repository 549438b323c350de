"""The backend's input rules, re-exported so a form can check as the person types.

The services apply these same functions when the request arrives, so a hint
shown next to a field says exactly what the backend would answer, worded as
the backend words it, and the rule lives in one place (`backend.domain`).
A form still submits through the client and shows the backend's answer:
these checks only spare a round trip for the obvious cases.
"""

from __future__ import annotations

from backend.domain.permissions import API_KEY_SCOPES, ROLE_PERMISSIONS
from backend.domain.settings import SettingSpec, SettingType
from backend.domain.users import (
    MAX_PASSWORD,
    MIN_PASSWORD,
    check_display_name,
    check_password,
    check_username,
    normalize_username,
)

__all__ = [
    "API_KEY_SCOPES",
    "MAX_PASSWORD",
    "MIN_PASSWORD",
    "ROLE_PERMISSIONS",
    "SettingSpec",
    "SettingType",
    "check_display_name",
    "check_password",
    "check_username",
    "normalize_username",
]

"""What the audit service hands back."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


class AuditEntryView(BaseModel):
    id: int
    ts: float
    actor: str
    actor_id: int | None
    action: str
    target: str
    details: dict[str, Any]
    source: str
    correlation_id: str | None


class AuditPage(BaseModel):
    entries: list[AuditEntryView]
    next_cursor: int | None
    """Pass as `before_id` for the next (older) page; None on the last page."""


class AuditVerification(BaseModel):
    ok: bool
    checked: int
    first_broken_id: int | None = None
    problem: str | None = None

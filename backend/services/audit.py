"""Reading and verifying the audit log. Entries are written by each unit of work."""

from __future__ import annotations

import json

from backend.domain.audit import AuditEntryView, AuditPage, AuditVerification
from backend.domain.errors import InvalidInput
from backend.domain.permissions import Permission
from backend.domain.principal import Principal
from backend.services.context import ServiceContext
from backend.storage import audit as store
from backend.storage.audit import GENESIS, AuditFilter, entry_hash
from backend.storage.models import AuditEntry

MAX_PAGE = 1000


def entry_view(entry: AuditEntry) -> AuditEntryView:
    return AuditEntryView(
        id=entry.id,
        ts=entry.ts,
        actor=entry.actor,
        actor_id=entry.actor_id,
        action=entry.action,
        target=entry.target,
        details=json.loads(entry.details),
        source=entry.source,
        correlation_id=entry.correlation_id,
    )


class AuditService:
    def __init__(self, ctx: ServiceContext) -> None:
        self._ctx = ctx

    async def list(
        self,
        principal: Principal,
        *,
        actor: str | None = None,
        action: str | None = None,
        since: float | None = None,
        until: float | None = None,
        text: str | None = None,
        before_id: int | None = None,
        limit: int = 100,
    ) -> AuditPage:
        principal.require(Permission.AUDIT_READ)
        if not 1 <= limit <= MAX_PAGE:
            raise InvalidInput(
                f"limit must be between 1 and {MAX_PAGE}", details={"field": "limit"}
            )
        if since is not None and until is not None and since > until:
            raise InvalidInput("the time range ends before it starts", details={"field": "until"})
        flt = AuditFilter(actor=actor, action=action, since=since, until=until, text=text)
        async with self._ctx.db.reader() as session:
            rows = await store.page(session, flt, before_id=before_id, limit=limit + 1)
        more = len(rows) > limit
        rows = rows[:limit]
        return AuditPage(
            entries=[entry_view(row) for row in rows],
            next_cursor=rows[-1].id if more and rows else None,
        )

    async def verify(self, principal: Principal) -> AuditVerification:
        """Walk the chain; the first entry whose hash or link does not match is reported."""
        principal.require(Permission.AUDIT_READ)
        checked = 0
        prev = GENESIS
        async with self._ctx.db.reader() as session:
            async for entry in store.walk(session):
                if entry.prev_hash != prev:
                    return AuditVerification(
                        ok=False,
                        checked=checked,
                        first_broken_id=entry.id,
                        problem=(
                            "the entry does not follow its predecessor: "
                            "an entry before it was deleted or changed"
                        ),
                    )
                if entry_hash(prev, entry) != entry.hash:
                    return AuditVerification(
                        ok=False,
                        checked=checked,
                        first_broken_id=entry.id,
                        problem="the entry's content does not match its hash: it was edited",
                    )
                prev = entry.hash
                checked += 1
        return AuditVerification(ok=True, checked=checked)

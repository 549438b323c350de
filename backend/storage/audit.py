"""The audit log: append with a hash chain, page, and read back for verification."""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, func, or_, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from backend.storage.models import AuditEntry

GENESIS = "0" * 64
_CHAIN_LOCK = 0x51D_A0D17
"""PostgreSQL advisory lock id that serializes appends, so the chain stays linear."""


def entry_hash(prev_hash: str, entry: AuditEntry) -> str:
    """The hash of an entry's content and its predecessor's hash.

    `details` is hashed as stored text, so any edit to the row changes it.
    """
    payload = json.dumps(
        [
            prev_hash,
            entry.id,
            entry.ts,
            entry.actor,
            entry.actor_id,
            entry.action,
            entry.target,
            entry.details,
            entry.source,
            entry.correlation_id,
        ],
        separators=(",", ":"),
    )
    return hashlib.sha256(payload.encode()).hexdigest()


def _details_text(details: dict[str, Any]) -> str:
    """JSON with non-ASCII kept as is, so a text search finds "Zoë" as typed.

    Text that is not valid Unicode (a lone surrogate) cannot be stored that
    way; it falls back to escapes rather than failing the whole change.
    """
    options: dict[str, Any] = {"sort_keys": True, "separators": (",", ":"), "default": str}
    stored = json.dumps(details, ensure_ascii=False, **options)
    try:
        stored.encode()
    except UnicodeEncodeError:
        return json.dumps(details, **options)
    return stored


async def append(
    session: AsyncSession,
    *,
    postgres: bool,
    ts: float,
    actor: str,
    actor_id: int | None,
    action: str,
    target: str,
    details: dict[str, Any],
    source: str,
    correlation_id: str | None,
) -> AuditEntry:
    if postgres:
        # Held until commit: the next writer reads our hash, not the same predecessor.
        await session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _CHAIN_LOCK})
    last = (
        await session.execute(select(AuditEntry.hash).order_by(AuditEntry.id.desc()).limit(1))
    ).scalar_one_or_none()
    prev_hash = last or GENESIS
    entry = AuditEntry(
        ts=ts,
        actor=actor,
        actor_id=actor_id,
        action=action,
        target=target,
        details=_details_text(details),
        source=source,
        correlation_id=correlation_id,
        prev_hash=prev_hash,
        hash="",
    )
    session.add(entry)
    await session.flush()  # assigns the id, which the hash covers
    entry.hash = entry_hash(prev_hash, entry)
    await session.flush()
    return entry


@dataclass(frozen=True, slots=True)
class AuditFilter:
    actor: str | None = None
    action: str | None = None
    since: float | None = None
    until: float | None = None
    text: str | None = None


def _filtered(query: Select[AuditEntry], flt: AuditFilter) -> Select[AuditEntry]:
    if flt.actor:
        query = query.where(AuditEntry.actor == flt.actor)
    if flt.action:
        query = query.where(AuditEntry.action == flt.action)
    if flt.since is not None:
        query = query.where(AuditEntry.ts >= flt.since)
    if flt.until is not None:
        query = query.where(AuditEntry.ts < flt.until)
    if flt.text:
        # Taken literally: "_" and "%" in the search text are not wildcards.
        needle = flt.text.lower()
        query = query.where(
            or_(
                *(
                    func.lower(column).contains(needle, autoescape=True)
                    for column in (
                        AuditEntry.target,
                        AuditEntry.details,
                        AuditEntry.action,
                        AuditEntry.actor,
                    )
                )
            )
        )
    return query


async def page(
    session: AsyncSession, flt: AuditFilter, *, before_id: int | None, limit: int
) -> list[AuditEntry]:
    """Newest first, keyset paged by id so deep pages cost what the first does."""
    query = _filtered(select(AuditEntry), flt)
    if before_id is not None:
        query = query.where(AuditEntry.id < before_id)
    query = query.order_by(AuditEntry.id.desc()).limit(limit)
    return list((await session.execute(query)).scalars())


async def count(session: AsyncSession, flt: AuditFilter) -> int:
    query = _filtered(select(AuditEntry), flt).with_only_columns(func.count())
    return int((await session.execute(query)).scalar_one())


async def walk(session: AsyncSession, batch: int = 5000) -> AsyncIterator[AuditEntry]:
    """Every entry in id order, fetched in batches to bound memory."""
    after = 0
    while True:
        rows = list(
            (
                await session.execute(
                    select(AuditEntry)
                    .where(AuditEntry.id > after)
                    .order_by(AuditEntry.id)
                    .limit(batch)
                )
            ).scalars()
        )
        if not rows:
            return
        for row in rows:
            yield row
        after = rows[-1].id
        session.expunge_all()

"""Versioned setting values."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from backend.storage.models import SettingVersion


async def latest(session: AsyncSession, key: str) -> SettingVersion | None:
    query = (
        select(SettingVersion)
        .where(SettingVersion.key == key)
        .order_by(SettingVersion.version.desc())
        .limit(1)
    )
    return (await session.execute(query)).scalar_one_or_none()


async def latest_all(
    session: AsyncSession, keys: list[str] | None = None
) -> dict[str, SettingVersion]:
    newest = select(SettingVersion.key, func.max(SettingVersion.version).label("version")).group_by(
        SettingVersion.key
    )
    if keys is not None:
        newest = newest.where(SettingVersion.key.in_(keys))
    sub = newest.subquery()
    query = select(SettingVersion).join(
        sub, (SettingVersion.key == sub.c.key) & (SettingVersion.version == sub.c.version)
    )
    return {row.key: row for row in (await session.execute(query)).scalars()}


async def history(session: AsyncSession, key: str, limit: int) -> list[SettingVersion]:
    query = (
        select(SettingVersion)
        .where(SettingVersion.key == key)
        .order_by(SettingVersion.version.desc())
        .limit(limit)
    )
    return list((await session.execute(query)).scalars())


async def version(session: AsyncSession, key: str, number: int) -> SettingVersion | None:
    query = select(SettingVersion).where(
        SettingVersion.key == key, SettingVersion.version == number
    )
    return (await session.execute(query)).scalar_one_or_none()


async def add(session: AsyncSession, row: SettingVersion) -> None:
    session.add(row)
    await session.flush()

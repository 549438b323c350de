"""Versioned, audited, optionally secret run-time settings."""

from __future__ import annotations

import builtins
import json
import logging
import time
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from backend.domain.errors import Conflict, InvalidInput, NotFound
from backend.domain.events import Topic
from backend.domain.permissions import Permission
from backend.domain.principal import Principal
from backend.domain.settings import (
    REGISTRY,
    SETTINGS,
    SettingChange,
    SettingSpec,
    SettingVersionView,
    SettingView,
    spec_for,
)
from backend.services.context import ServiceContext, unit_of_work
from backend.services.crypto import DecryptionFailed
from backend.services.shared import SharedCall
from backend.storage import settings as store
from backend.storage.models import SettingVersion

log = logging.getLogger(__name__)
_UNREADABLE = object()

EXPORT_FORMAT = "quarterdeck.settings"
EXPORT_VERSION = 1
HISTORY_LIMIT = 200
RECENT_TTL = 1.0
"""Seconds `recent` reuses one read of every setting: a change made through
another server instance applies within this delay."""


class SettingsService:
    def __init__(self, ctx: ServiceContext) -> None:
        self._ctx = ctx
        self._recent: tuple[float, dict[str, Any]] | None = None
        """When the non-secret values were read (`time.monotonic()`), and them."""
        self._recent_read: SharedCall[dict[str, Any]] = SharedCall()
        self._generation = 0
        """Bumped by every write of this service: a read that started before it is not kept."""

    # -- reading ---------------------------------------------------------------

    async def list(self, principal: Principal) -> builtins.list[SettingView]:
        principal.require(Permission.SETTINGS_READ)
        async with self._ctx.db.reader() as session:
            rows = await store.latest_all(session)
        return [self._view(principal, spec, rows.get(spec.key)) for spec in SETTINGS]

    async def get(self, principal: Principal, key: str) -> SettingView:
        principal.require(Permission.SETTINGS_READ)
        spec = spec_for(key)
        async with self._ctx.db.reader() as session:
            row = await store.latest(session, key)
        return self._view(principal, spec, row)

    async def history(self, principal: Principal, key: str) -> builtins.list[SettingVersionView]:
        principal.require(Permission.SETTINGS_READ)
        spec = spec_for(key)
        async with self._ctx.db.reader() as session:
            rows = await store.history(session, key, HISTORY_LIMIT)
        return [self._version_view(principal, spec, row) for row in rows]

    async def values(self, *keys: str) -> dict[str, Any]:
        """Current values for the backend's own use (no principal, secrets decrypted)."""
        specs = [spec_for(key) for key in keys]
        async with self._ctx.db.reader() as session:
            rows = await store.latest_all(session, list(keys))
        return {spec.key: self._plain(spec, rows.get(spec.key)) for spec in specs}

    async def value(self, key: str) -> Any:
        return (await self.values(key))[key]

    async def recent(self, *keys: str) -> dict[str, Any]:
        """`values` for hot paths (every request, every listing): read at most once a second.

        All non-secret values are read in one query and reused for
        `RECENT_TTL` seconds, so a request that needs a setting costs no
        database round trip. A write through this service applies at once;
        one through another server instance within `RECENT_TTL`. Requests
        arriving while the values are re-read wait for that one read rather
        than each starting their own. Secret settings are not kept in memory
        here: asking for one reads it as `values` does.
        """
        specs = [spec_for(key) for key in keys]
        if any(spec.secret for spec in specs):
            return await self.values(*keys)
        recent = self._recent
        if recent is None or time.monotonic() - recent[0] >= RECENT_TTL:
            generation = self._generation
            values = await self._recent_read(generation, lambda: self._read_recent(generation))
        else:
            values = recent[1]
        return {spec.key: values[spec.key] for spec in specs}

    async def _read_recent(self, generation: int) -> dict[str, Any]:
        started = time.monotonic()
        async with self._ctx.db.reader() as session:
            rows = await store.latest_all(session)
        values = {
            spec.key: self._plain(spec, rows.get(spec.key)) for spec in SETTINGS if not spec.secret
        }
        if generation == self._generation:
            self._recent = (started, values)
        return values

    def _changed(self) -> None:
        """After a committed write: `recent` reads again."""
        self._generation += 1
        self._recent = None

    # -- writing ---------------------------------------------------------------

    async def write(
        self, principal: Principal, key: str, value: Any, *, expected_version: int, reason: str = ""
    ) -> SettingView:
        spec = spec_for(key)
        self._require_write(principal, spec)
        canonical = spec.validate(value)
        try:
            async with unit_of_work(self._ctx) as uow:
                current = await store.latest(uow.session, key)
                current_version = current.version if current else 0
                if current_version != expected_version:
                    raise self._stale(key, expected_version, current_version)
                old = self._previous(spec, current)
                row = await self._store(
                    uow.session,
                    principal,
                    spec,
                    canonical,
                    version=current_version + 1,
                    reason=reason,
                )
                await uow.audit(
                    principal,
                    "settings.write",
                    key,
                    self._audit_details(spec, old, canonical, row.version, reason),
                )
                uow.publish(
                    Topic.SETTINGS, {"key": key, "version": row.version, "actor": principal.name}
                )
        except IntegrityError:
            # Another writer inserted the same version between our read and our insert.
            raise self._stale(key, expected_version, None) from None
        self._changed()
        return self._view(principal, spec, row)

    async def rollback(
        self,
        principal: Principal,
        key: str,
        *,
        version: int,
        reason: str = "",
        expected_version: int | None = None,
    ) -> SettingView:
        """Write an old version's value as a new version (history is never rewritten).

        With `expected_version`, a rollback based on a stale view is a conflict,
        as for `write`.
        """
        spec = spec_for(key)
        self._require_write(principal, spec)
        try:
            async with unit_of_work(self._ctx) as uow:
                if version == 0:
                    target_value = spec.default
                else:
                    target = await store.version(uow.session, key, version)
                    if target is None:
                        raise NotFound(
                            f"{key} has no version {version}",
                            details={"key": key, "version": version},
                        )
                    target_value = self._plain(spec, target)
                current = await store.latest(uow.session, key)
                current_version = current.version if current else 0
                if expected_version is not None and current_version != expected_version:
                    raise self._stale(key, expected_version, current_version)
                old = self._previous(spec, current)
                note = reason or f"rollback to version {version}"
                row = await self._store(
                    uow.session,
                    principal,
                    spec,
                    target_value,
                    version=current_version + 1,
                    reason=note,
                )
                details = self._audit_details(spec, old, target_value, row.version, note)
                await uow.audit(
                    principal, "settings.rollback", key, {**details, "to_version": version}
                )
                uow.publish(
                    Topic.SETTINGS, {"key": key, "version": row.version, "actor": principal.name}
                )
        except IntegrityError:
            raise self._stale(key, None, None) from None
        self._changed()
        return self._view(principal, spec, row)

    # -- export and import -----------------------------------------------------

    async def export(
        self, principal: Principal, *, include_secrets: bool = False
    ) -> dict[str, Any]:
        principal.require(Permission.SETTINGS_READ)
        if include_secrets:
            principal.require(Permission.SETTINGS_SECRETS)
        async with self._ctx.db.reader() as session:
            rows = await store.latest_all(session)
        values = {
            spec.key: self._plain(spec, rows.get(spec.key))
            for spec in SETTINGS
            if include_secrets or not spec.secret
        }
        return {"format": EXPORT_FORMAT, "version": EXPORT_VERSION, "settings": values}

    async def import_(
        self, principal: Principal, document: Any, *, reason: str = "import", dry_run: bool = False
    ) -> builtins.list[SettingChange]:
        """Apply a whole exported document, or nothing: every value is validated first.

        Settings missing from the document keep their value; with `dry_run`
        the changes are computed and returned but not written.
        """
        principal.require(Permission.SETTINGS_WRITE)
        incoming = self._parse_document(document)
        for key in incoming:
            self._require_write(principal, REGISTRY[key])
        try:
            async with unit_of_work(self._ctx) as uow:
                rows = await store.latest_all(uow.session, list(incoming))
                changes: builtins.list[SettingChange] = []
                for key, new in incoming.items():
                    spec = REGISTRY[key]
                    current = rows.get(key)
                    old = self._previous(spec, current)
                    if old == new:
                        continue
                    changes.append(self._change(principal, spec, old, new))
                    if dry_run:
                        continue
                    version = (current.version if current else 0) + 1
                    await self._store(
                        uow.session, principal, spec, new, version=version, reason=reason
                    )
                    uow.publish(
                        Topic.SETTINGS, {"key": key, "version": version, "actor": principal.name}
                    )
                if changes and not dry_run:
                    await uow.audit(
                        principal,
                        "settings.import",
                        "",
                        {"reason": reason, "changes": [change.model_dump() for change in changes]},
                    )
        except IntegrityError:
            raise Conflict("settings changed while importing; nothing was applied") from None
        if changes and not dry_run:
            self._changed()
        return changes

    # -- helpers ---------------------------------------------------------------

    def _parse_document(self, document: Any) -> dict[str, Any]:
        if not isinstance(document, dict) or document.get("format") != EXPORT_FORMAT:
            raise InvalidInput(
                f"not a Quarterdeck settings export (format must be {EXPORT_FORMAT!r})"
            )
        version = document.get("version")
        if type(version) is not int or version != EXPORT_VERSION:
            raise InvalidInput(f"unsupported export version {document.get('version')!r}")
        values = document.get("settings")
        if not isinstance(values, dict):
            raise InvalidInput("the export has no 'settings' object")
        problems: dict[str, str] = {}
        incoming: dict[str, Any] = {}
        for key, value in values.items():
            spec = REGISTRY.get(key)
            if spec is None:
                problems[key] = "unknown setting"
                continue
            try:
                incoming[key] = spec.validate(value)
            except InvalidInput as error:
                problems[key] = str(error.details.get("problem", error.message))
        if problems:
            listed = "; ".join(f"{key}: {problem}" for key, problem in problems.items())
            raise InvalidInput(f"nothing was imported: {listed}", details={"problems": problems})
        return incoming

    def _require_write(self, principal: Principal, spec: SettingSpec) -> None:
        principal.require(Permission.SETTINGS_WRITE)
        if spec.secret:
            principal.require(Permission.SETTINGS_SECRETS)

    def _stale(self, key: str, expected: int | None, current: int | None) -> Conflict:
        return Conflict(
            f"{key} was changed by someone else; reload it and try again",
            details={"key": key, "expected_version": expected, "current_version": current},
        )

    async def _store(
        self,
        session: AsyncSession,
        principal: Principal,
        spec: SettingSpec,
        value: Any,
        *,
        version: int,
        reason: str,
    ) -> SettingVersion:
        text = json.dumps(value)
        encrypt = spec.secret and value != ""
        row = SettingVersion(
            key=spec.key,
            version=version,
            value=self._ctx.keys.encrypt(text) if encrypt else text,
            encrypted=encrypt,
            actor=principal.name,
            reason=reason,
            created_at=self._ctx.clock(),
        )
        await store.add(session, row)
        return row

    def _plain(self, spec: SettingSpec, row: SettingVersion | None) -> Any:
        if row is None:
            return spec.default
        text = self._ctx.keys.decrypt(row.value) if row.encrypted else row.value
        return json.loads(text)

    def _previous(self, spec: SettingSpec, row: SettingVersion | None) -> Any:
        """The value being replaced, for audit and change lists.

        A secret that can no longer be decrypted (the key changed) counts as
        unknown, so it can still be replaced.
        """
        try:
            return self._plain(spec, row)
        except DecryptionFailed:
            return _UNREADABLE

    def _masked(self, principal: Principal, spec: SettingSpec) -> bool:
        return spec.secret and not principal.can(Permission.SETTINGS_SECRETS)

    def _view(
        self, principal: Principal, spec: SettingSpec, row: SettingVersion | None
    ) -> SettingView:
        masked = self._masked(principal, spec)
        value = None
        if not masked:
            try:
                value = self._plain(spec, row)
            except DecryptionFailed:
                # One undecryptable secret must not hide every other setting;
                # shown masked, it can still be overwritten with a new value.
                log.warning("setting %s cannot be decrypted with the current key", spec.key)
                masked = True
        return SettingView(
            key=spec.key,
            value=value,
            version=row.version if row else 0,
            masked=masked,
            # Decided without decrypting: empty secrets are stored unencrypted,
            # so a masked listing works even when the key cannot decrypt.
            is_set=row is not None and row.encrypted if spec.secret else True,
            updated_at=row.created_at if row else None,
            updated_by=row.actor if row else None,
            spec=spec.schema(),
        )

    def _version_view(
        self, principal: Principal, spec: SettingSpec, row: SettingVersion
    ) -> SettingVersionView:
        masked = self._masked(principal, spec)
        return SettingVersionView(
            key=spec.key,
            version=row.version,
            value=None if masked else self._plain(spec, row),
            masked=masked,
            actor=row.actor,
            reason=row.reason,
            created_at=row.created_at,
        )

    def _change(self, principal: Principal, spec: SettingSpec, old: Any, new: Any) -> SettingChange:
        masked = self._masked(principal, spec) or spec.secret
        return SettingChange(
            key=spec.key, old=None if masked else old, new=None if masked else new, masked=masked
        )

    @staticmethod
    def _audit_details(
        spec: SettingSpec, old: Any, new: Any, version: int, reason: str
    ) -> dict[str, Any]:
        if spec.secret:
            return {"version": version, "reason": reason, "secret": True}
        return {"version": version, "reason": reason, "old": old, "new": new}

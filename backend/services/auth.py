"""Sign-in, sessions and bearer credentials.

A session is a family of refresh tokens: each refresh rotates the token, and
presenting a token that was already rotated (a stolen copy, or a replay)
revokes the whole family. Failures never say whether the user exists.
"""

from __future__ import annotations

import uuid

from backend.domain.errors import RateLimited, Unauthenticated
from backend.domain.permissions import Role
from backend.domain.principal import Principal
from backend.domain.users import TokenPair, normalize_username
from backend.services.context import ServiceContext, unit_of_work
from backend.services.crypto import new_refresh_token, split_api_key, token_hash
from backend.services.settings import SettingsService
from backend.storage import users as store
from backend.storage.models import RefreshToken

BAD_CREDENTIALS = "wrong username or password"
API_KEY_TOUCH_INTERVAL = 60.0
"""Record an API key's last use at most this often, to keep reads cheap."""


class AuthService:
    def __init__(self, ctx: ServiceContext, settings: SettingsService) -> None:
        self._ctx = ctx
        self._settings = settings

    async def login(
        self,
        username: str,
        password: str,
        *,
        source: str = "local",
        correlation_id: str | None = None,
    ) -> TokenPair:
        cfg = await self._settings.values(
            "auth.lockout_threshold",
            "auth.lockout_minutes",
            "auth.login_rate_per_minute",
            "auth.session_hours",
            "auth.access_token_minutes",
        )
        retry = await self._ctx.limiter.hit(
            f"login:source:{source}", limit=cfg["auth.login_rate_per_minute"], window=60.0
        )
        if retry:
            raise RateLimited(
                "too many sign-in attempts from this address; wait and try again", retry_after=retry
            )
        name = normalize_username(username)
        # Keyed by the name typed, existing or not, so a lock reveals nothing.
        lock_key = f"login:failures:{name}"
        failures = int(await self._ctx.cache.get(lock_key) or 0)
        lock_seconds = cfg["auth.lockout_minutes"] * 60.0
        if failures >= cfg["auth.lockout_threshold"]:
            raise RateLimited(
                "this account is locked after too many failed sign-ins; try again later",
                retry_after=lock_seconds,
            )
        async with self._ctx.db.reader() as session:
            user = await store.by_username(session, name)
        ok = await self._ctx.keys.verify_password(user.password_hash if user else None, password)
        if user is None or not ok or user.disabled:
            await self._ctx.cache.incr(lock_key, ttl=lock_seconds)
            async with unit_of_work(self._ctx) as uow:
                actor = Principal.system("auth").with_request(
                    source=source, correlation_id=correlation_id
                )
                await uow.audit(actor, "auth.login_failed", name, {})
            raise Unauthenticated(BAD_CREDENTIALS)
        await self._ctx.cache.delete(lock_key)
        now = self._ctx.clock()
        family = uuid.uuid4().hex
        refresh = new_refresh_token()
        principal = Principal.for_user(
            user_id=user.id, username=user.username, role=Role(user.role), session_id=family
        ).with_request(source=source, correlation_id=correlation_id)
        async with unit_of_work(self._ctx) as uow:
            await store.add_refresh_token(
                uow.session,
                RefreshToken(
                    user_id=user.id,
                    family_id=family,
                    token_hash=token_hash(refresh),
                    created_at=now,
                    expires_at=now + cfg["auth.session_hours"] * 3600.0,
                    source=source[:100],
                ),
            )
            await uow.audit(principal, "auth.login", user.username, {"session": family})
        return self._pair(user.id, family, refresh, cfg["auth.access_token_minutes"])

    async def refresh(self, refresh_token: str, *, source: str = "local") -> TokenPair:
        now = self._ctx.clock()
        minutes = await self._settings.value("auth.access_token_minutes")
        reused = False
        async with unit_of_work(self._ctx) as uow:
            token = await store.refresh_token_by_hash(uow.session, token_hash(refresh_token))
            if token is None or token.revoked_at is not None or token.expires_at <= now:
                raise Unauthenticated("the session has ended; sign in again")
            if not await store.claim_refresh_token(uow.session, token.id, now):
                # Presented twice: whoever holds the other copy must not keep the session.
                await store.revoke_family(uow.session, token.family_id, now)
                await uow.audit(
                    Principal.system("auth").with_request(source=source, correlation_id=None),
                    "auth.refresh_reused",
                    str(token.user_id),
                    {"session": token.family_id},
                )
                reused = True
            else:
                user = await store.by_id(uow.session, token.user_id)
                if user is None or user.disabled:
                    raise Unauthenticated("the session has ended; sign in again")
                fresh = new_refresh_token()
                await store.add_refresh_token(
                    uow.session,
                    RefreshToken(
                        user_id=token.user_id,
                        family_id=token.family_id,
                        token_hash=token_hash(fresh),
                        created_at=now,
                        expires_at=token.expires_at,
                        source=source[:100],
                    ),
                )
        if reused:
            raise Unauthenticated(
                "this session was ended because its token was used twice; sign in again"
            )
        return self._pair(token.user_id, token.family_id, fresh, minutes)

    async def logout(self, principal: Principal) -> None:
        if principal.session_id is None:
            return
        async with unit_of_work(self._ctx) as uow:
            await store.revoke_family(uow.session, principal.session_id, self._ctx.clock())
            await uow.audit(
                principal, "auth.logout", principal.name, {"session": principal.session_id}
            )

    async def authenticate(self, bearer: str) -> Principal:
        """The principal behind an access token or an API key."""
        if split_api_key(bearer) is not None:
            return await self._authenticate_api_key(bearer)
        claims = self._ctx.keys.read_access_token(bearer)
        async with self._ctx.db.reader() as session:
            user = await store.by_id(session, claims.user_id)
            if user is None or user.disabled:
                raise Unauthenticated("the account no longer exists or is disabled")
            if not await store.family_active(session, claims.session_id, self._ctx.clock()):
                raise Unauthenticated("the session has ended; sign in again")
        return Principal.for_user(
            user_id=user.id,
            username=user.username,
            role=Role(user.role),
            session_id=claims.session_id,
        )

    async def _authenticate_api_key(self, key: str) -> Principal:
        from backend.services.api_keys import principal_for_key  # noqa: PLC0415

        return await principal_for_key(self._ctx, key)

    def _pair(self, user_id: int, family: str, refresh: str, minutes: int) -> TokenPair:
        ttl = minutes * 60
        access = self._ctx.keys.issue_access_token(user_id=user_id, session_id=family, ttl=ttl)
        return TokenPair(access_token=access, refresh_token=refresh, expires_in=ttl)

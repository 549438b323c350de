"""Sign-in, sessions and bearer credentials.

A session is a family of refresh tokens: each refresh rotates the token, and
presenting a token that was already rotated (a stolen copy, or a replay)
revokes the whole family. Failures never say whether the user exists.

Authenticating a request costs a JWT check and two database reads (the
account, the session), or two reads for an API key. A process therefore
remembers, for `PRINCIPAL_TTL` seconds, the principal behind each credential
it verified (`PrincipalCache`, keyed by the credential's SHA-256), and drops
it the moment it learns the credential may no longer hold:

- at once for what this process does itself: a sign-out, a refresh token
  replayed (its session ends), an API key revoked;
- on the event bus for everything else, from any instance: every `users`
  event and the audit events of a sign-out, a replayed refresh token, an
  account updated (disabled, role changed), deleted or given a new password,
  and a revoked key. With Redis that is within a millisecond or so on every
  instance; a stream reset (events missed) empties the cache.

The TTL bounds what the bus cannot tell: with several worker processes and
no Redis, each worker has its own in-memory bus, so a disable or a sign-out
handled by one worker is noticed by the others within `PRINCIPAL_TTL`
seconds. It also bounds how late a session's own expiry is noticed; an
access token's expiry is checked on every use.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
import uuid
import weakref
from collections import OrderedDict
from collections.abc import Callable
from contextlib import aclosing
from dataclasses import dataclass

from backend.domain.errors import RateLimited, Unauthenticated
from backend.domain.events import StreamReset, Topic
from backend.domain.permissions import Role
from backend.domain.principal import Principal
from backend.domain.users import TokenPair, normalize_username
from backend.services.context import ServiceContext, unit_of_work
from backend.services.crypto import new_refresh_token, split_api_key, token_hash
from backend.services.settings import SettingsService
from backend.storage import users as store
from backend.storage.database import Database
from backend.storage.models import RefreshToken

log = logging.getLogger(__name__)

BAD_CREDENTIALS = "wrong username or password"
API_KEY_TOUCH_INTERVAL = 60.0
"""Record an API key's last use at most this often, to keep reads cheap."""
PRINCIPAL_TTL = 5.0
"""Seconds a verified credential's principal is reused without reading the database."""
PRINCIPAL_CACHE_SIZE = 10_000
"""Credentials remembered per process, least recently used dropped first."""
ORIGIN_ID = "0"
"""An event id before any the buses issue: resuming from it replays the whole bus."""
LISTEN_RETRY = 1.0
"""Seconds between attempts to (re)start the bus listener that keeps the cache honest."""
REVOKING_ACTIONS = frozenset(
    {
        "auth.logout",
        "auth.refresh_reused",
        "users.update",
        "users.delete",
        "users.reset_password",
        "users.change_password",
        "api_keys.revoke",
    }
)
"""Audit actions after which a remembered principal may be wrong."""


@dataclass(slots=True)
class _Remembered:
    principal: Principal
    renew_at: float
    """`time.monotonic()` after which a use also checks the credential again, in the background."""
    until: float
    """`time.monotonic()` after which the entry is not used any more."""
    token_expires: float | None
    """The access token's own expiry (epoch seconds); None for an API key."""


class PrincipalCache:
    """Verified credentials -> principals, bounded in size and time (see the module doc).

    `generation` changes whenever entries are dropped: a caller reads it
    before checking a credential against the database and passes it to
    `put`, which ignores the result if something was revoked meanwhile.
    The cache holds nothing until `enable`d by the bus listener, and empties
    when the listener stops: without it, revocations elsewhere would go
    unnoticed.
    """

    def __init__(
        self,
        *,
        ttl: float = PRINCIPAL_TTL,
        size: int = PRINCIPAL_CACHE_SIZE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ttl = ttl
        self._size = size
        self._clock = clock
        self._entries: OrderedDict[bytes, _Remembered] = OrderedDict()
        self._generation = 0
        self._enabled = False

    @staticmethod
    def key(credential: str) -> bytes:
        return hashlib.sha256(credential.encode()).digest()

    @property
    def generation(self) -> int | None:
        """The value to pass to `put`; None while disabled (nothing will be kept)."""
        return self._generation if self._enabled else None

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: bytes) -> tuple[Principal, bool] | None:
        """The principal, and whether it is due for renewal (past half its TTL)."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        now = self._clock()
        expired = entry.token_expires is not None and entry.token_expires <= time.time()
        if expired or entry.until <= now:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return entry.principal, entry.renew_at <= now

    def drop(self, key: bytes) -> None:
        self._entries.pop(key, None)

    def put(
        self,
        key: bytes,
        principal: Principal,
        *,
        generation: int | None,
        token_expires: float | None = None,
    ) -> None:
        if generation is None or generation != self._generation or not self._enabled:
            return
        now = self._clock()
        self._entries[key] = _Remembered(
            principal, now + self._ttl / 2, now + self._ttl, token_expires
        )
        self._entries.move_to_end(key)
        while len(self._entries) > self._size:
            self._entries.popitem(last=False)

    def clear(self) -> None:
        self._entries.clear()
        self._generation += 1

    def forget(self, match: Callable[[Principal], bool]) -> None:
        """Drop the principals `match` selects (and any check in flight)."""
        for key in [key for key, entry in self._entries.items() if match(entry.principal)]:
            del self._entries[key]
        self._generation += 1

    def forget_session(self, session_id: str) -> None:
        self.forget(lambda principal: principal.session_id == session_id)

    def forget_api_key(self, key_id: int) -> None:
        self.forget(lambda principal: principal.api_key_id == key_id)

    def forget_user(self, user_id: int) -> None:
        """The account's sessions and API keys."""
        self.forget(lambda principal: principal.user_id == user_id)

    def enable(self) -> None:
        self.clear()
        self._enabled = True

    def disable(self) -> None:
        self._enabled = False
        self.clear()


_caches: weakref.WeakKeyDictionary[Database, PrincipalCache] = weakref.WeakKeyDictionary()


def principal_cache(ctx: ServiceContext) -> PrincipalCache:
    """The cache of the core `ctx` belongs to (one per open database, so per core).

    Shared by the services that end credentials (API keys, users), so they
    can drop what they revoke in the same step.
    """
    cache = _caches.get(ctx.db)
    if cache is None:
        cache = _caches[ctx.db] = PrincipalCache()
    return cache


class AuthService:
    def __init__(self, ctx: ServiceContext, settings: SettingsService) -> None:
        self._ctx = ctx
        self._settings = settings
        self._cache = principal_cache(ctx)
        self._checking: dict[bytes, asyncio.Task[Principal]] = {}
        """Credentials being checked against the database, so that the requests
        arriving meanwhile with the same one (a client's burst, every
        request after its entry expired) wait for that check instead of
        repeating it."""
        self._listener: asyncio.Task[None] | None = None
        self._listen_after = 0.0

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
            self._cache.forget_session(token.family_id)
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
        self._cache.forget_session(principal.session_id)

    async def authenticate(self, bearer: str) -> Principal:
        """The principal behind an access token or an API key.

        Remembered for a few seconds once verified (see `PrincipalCache`).
        Past half that time, a use starts a check in the background and is
        answered from the cache meanwhile, so a credential in steady use is
        re-read every few seconds without any request waiting for it.
        """
        key = self._cache.key(bearer)
        remembered = self._cache.get(key)
        if remembered is not None:
            principal, due = remembered
            if due and key not in self._checking:
                self._start_check(key, bearer)
            return principal
        self._keep_listening()
        check = self._checking.get(key) or self._start_check(key, bearer)
        # Shielded: a caller that goes away must not cancel the others' check.
        return await asyncio.shield(check)

    def _start_check(self, key: bytes, bearer: str) -> asyncio.Task[Principal]:
        check = asyncio.create_task(self._check(key, bearer))
        self._checking[key] = check

        def finished(task: asyncio.Task[Principal]) -> None:
            self._checking.pop(key, None)
            # Retrieved here too: a renewal nobody awaits must not be reported as lost.
            if not task.cancelled() and isinstance(task.exception(), Unauthenticated):
                self._cache.drop(key)

        check.add_done_callback(finished)
        return check

    async def _check(self, key: bytes, bearer: str) -> Principal:
        """Verify a credential against the database and remember the principal."""
        generation = self._cache.generation
        if split_api_key(bearer) is not None:
            principal = await self._authenticate_api_key(bearer)
            self._cache.put(key, principal, generation=generation)
            return principal
        claims = self._ctx.keys.read_access_token(bearer)
        principal = await self._check_session(claims.user_id, claims.session_id)
        self._cache.put(key, principal, generation=generation, token_expires=claims.expires_at)
        return principal

    async def _check_session(self, user_id: int, session_id: str) -> Principal:
        async with self._ctx.db.reader() as session:
            user = await store.by_id(session, user_id)
            if user is None or user.disabled:
                raise Unauthenticated("the account no longer exists or is disabled")
            if not await store.family_active(session, session_id, self._ctx.clock()):
                raise Unauthenticated("the session has ended; sign in again")
        return Principal.for_user(
            user_id=user.id,
            username=user.username,
            role=Role(user.role),
            session_id=session_id,
        )

    # -- keeping the principal cache honest -------------------------------------

    def _keep_listening(self) -> None:
        """Start the bus listener if it is not running (at most every LISTEN_RETRY s)."""
        if self._listener is not None and not self._listener.done():
            return
        now = time.monotonic()
        if now < self._listen_after:
            return
        self._listen_after = now + LISTEN_RETRY
        self._listener = asyncio.create_task(self._listen(), name="principal-cache-listener")

    async def _listen(self) -> None:
        """Empty the cache on every event that may end a credential, from any instance.

        The subscription resumes from the bus's newest event id, taken before
        the cache is enabled, so nothing published after that is missed even
        though the subscriber starts a little later. On a bus that has
        carried no event yet it resumes from "0", which both buses order
        before their first id (memory: 1, 2, ...; Redis: "<ms>-<seq>").
        """
        bus = self._ctx.bus
        try:
            since = await bus.last_id() or ORIGIN_ID
            self._cache.enable()
            topics = [Topic.AUDIT.value, Topic.USERS.value]
            async with aclosing(bus.subscribe(topics, since=since)) as messages:
                async for message in messages:
                    if (
                        isinstance(message, StreamReset)
                        or message.topic == Topic.USERS
                        or message.data.get("action") in REVOKING_ACTIONS
                    ):
                        self._cache.clear()
        except Exception:
            # Whatever the bus raised (Redis down...): stop caching, retry later.
            log.warning("principal cache: lost the event bus; not caching", exc_info=True)
        finally:
            self._cache.disable()

    async def _authenticate_api_key(self, key: str) -> Principal:
        from backend.services.api_keys import principal_for_key  # noqa: PLC0415

        return await principal_for_key(self._ctx, key)

    def _pair(self, user_id: int, family: str, refresh: str, minutes: int) -> TokenPair:
        ttl = minutes * 60
        access = self._ctx.keys.issue_access_token(user_id=user_id, session_id=family, ttl=ttl)
        return TokenPair(access_token=access, refresh_token=refresh, expires_in=ttl)

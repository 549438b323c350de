"""`LocalClient`: the embedded backend, a `Core` on a thread of this process.

The core runs on the bridge's backend loop (`console.client.bridge`); every
call crosses the bridge, so a slow query never stalls the window. Sign-in
goes through the same `AuthService` as the server's: the client holds real
tokens, resolves the acting principal from the access token on every call
(so a role change or a disabled account takes effect at once, as remotely)
and renews them before they expire. The answers are the services' own
domain views, the very objects `RemoteClient` parses from JSON.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from backend.api.schemas import (
    ApiKeyCreateIn,
    LoginIn,
    PasswordIn,
    RollbackIn,
    SettingWriteIn,
    UserCreateIn,
    UserPatchIn,
)
from backend.config import Settings
from backend.domain.errors import InvalidInput, Unauthenticated
from backend.domain.principal import Principal
from backend.domain.users import me_view
from console.client.bodies import build
from console.client.bridge import Bridge, Stream
from console.client.protocol import EventStream, StatusListener
from console.client.status import StatusBoard
from console.client.tokens import Tokens
from console.client.types import (
    ApiKeyView,
    AuditPage,
    AuditQuery,
    AuditVerification,
    ConnectionState,
    ConnectionStatus,
    CreatedApiKey,
    Event,
    HostView,
    MeView,
    SeriesData,
    SeriesView,
    SettingChange,
    SettingVersionView,
    SettingView,
    StreamReset,
    UserView,
)

if TYPE_CHECKING:
    from backend.core import Core

T = TypeVar("T")

PING_INTERVAL = 2.0
"""Seconds between bridge round trips measured for the latency shown."""
SIGNED_OUT = "sign in first"


class _Embedded:
    """The backend-loop side: the open core and the session's tokens.

    Touched only on the backend loop, so its lock and the core's connections
    belong to that loop.
    """

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._stack = contextlib.AsyncExitStack()
        self._core: Core | None = None
        self.tokens: Tokens | None = None
        self._renewing = asyncio.Lock()

    @property
    def core(self) -> Core:
        if self._core is None:
            raise RuntimeError("the embedded core is not open")
        return self._core

    async def open(self) -> None:
        from backend.core import Core  # noqa: PLC0415 - SQLAlchemy and the services load here

        self._core = await self._stack.enter_async_context(Core.open(self._settings))

    async def close(self) -> None:
        self._core = None
        await self._stack.aclose()

    async def sign_in(self, username: str, password: str) -> MeView:
        pair = await self.core.auth.login(username, password, source="local")
        self.tokens = Tokens.issued(pair)
        return me_view(await self.principal())

    async def resume(self, refresh_token: str) -> MeView:
        pair = await self.core.auth.refresh(refresh_token, source="local")
        self.tokens = Tokens.issued(pair)
        return me_view(await self.principal())

    async def principal(self) -> Principal:
        """Who is acting now, from the current access token.

        The token is renewed first when due, and once more when it is
        refused while the refresh token still holds, as `RemoteClient` does
        on a 401, so both modes end a session at the same moments.
        """
        tokens = self.tokens
        if tokens is None:
            raise Unauthenticated(SIGNED_OUT)
        if tokens.due():
            tokens = await self._renew(tokens)
        try:
            return await self.core.auth.authenticate(tokens.access)
        except Unauthenticated:
            tokens = await self._renew(tokens)
        return await self.core.auth.authenticate(tokens.access)

    async def _renew(self, seen: Tokens) -> Tokens:
        """Rotate the refresh token once, however many calls found `seen` stale."""
        async with self._renewing:
            if self.tokens is seen:
                try:
                    pair = await self.core.auth.refresh(seen.refresh, source="local")
                except Unauthenticated:
                    self.tokens = None
                    raise
                self.tokens = Tokens.issued(pair)
            if self.tokens is None:
                raise Unauthenticated(SIGNED_OUT)
            return self.tokens

    async def sign_out(self) -> None:
        if self.tokens is None:
            return
        principal = await self.principal()
        self.tokens = None
        await self.core.auth.logout(principal)

    async def as_user(self, action: Callable[[Core, Principal], Awaitable[T]]) -> T:
        return await action(self.core, await self.principal())

    async def subscribe(
        self, topics: Sequence[str], since: str | None
    ) -> AsyncIterator[Event | StreamReset]:
        """Subscribe now (checked and positioned on the bus); the messages follow."""
        # Shielded: a stream closed while it starts must not cut the sign-in check off
        # half-way through its database query (the connection would never be returned,
        # and closing the core would wait for it).
        principal = await asyncio.shield(self.principal())
        subscription = await self.core.events.subscribe(principal, topics, since)
        return subscription.messages


async def _nothing() -> None:
    """A bridge round trip and no work: what the latency indicator measures."""


class LocalClient:
    """The `Client` of the embedded backend (see the module docstring)."""

    def __init__(
        self, settings: Settings, *, name: str = "Embedded", ping_interval: float = PING_INTERVAL
    ) -> None:
        self._name = name
        self._bridge = Bridge()
        self._embedded = _Embedded(settings)
        self._board = StatusBoard()
        self._ping_interval = ping_interval
        self._pinger: asyncio.Task[None] | None = None
        self._streams: set[Stream[Event | StreamReset]] = set()

    @classmethod
    async def open(
        cls, settings: Settings, *, name: str = "Embedded", ping_interval: float = PING_INTERVAL
    ) -> LocalClient:
        """Start the backend thread and open the core on it (migrating SQLite first)."""
        client = cls(settings, name=name, ping_interval=ping_interval)
        await client._bridge.start()
        try:
            await client._bridge.call(client._embedded.open())
        except BaseException:
            await client._bridge.stop()
            raise
        await client._ping()
        client._pinger = asyncio.create_task(client._keep_pinging(), name="local-client-ping")
        return client

    # -- connection ---------------------------------------------------------------

    @property
    def name(self) -> str:
        return self._name

    @property
    def embedded(self) -> bool:
        return True

    @property
    def status(self) -> ConnectionStatus:
        return self._board.status

    def add_status_listener(self, listener: StatusListener) -> Callable[[], None]:
        return self._board.add(listener)

    async def close(self) -> None:
        if self._pinger is not None:
            self._pinger.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pinger
            self._pinger = None
        for stream in list(self._streams):
            await stream.aclose()
        self._streams.clear()
        if self._bridge.running:
            try:
                # A call still running (or unwinding from its cancellation, its
                # SQLite connection closing once the query stops) ends before
                # the core closes under it (see `Bridge`).
                await self._bridge.cancel_calls()
                await self._bridge.call(self._embedded.close())
            finally:
                await self._bridge.stop()
        self._board.set(ConnectionState.OFFLINE, detail="closed")

    async def _ping(self) -> None:
        started = time.perf_counter()
        await self._bridge.call(_nothing())
        latency = (time.perf_counter() - started) * 1000.0
        self._board.set(ConnectionState.LIVE, latency_ms=latency)

    async def _keep_pinging(self) -> None:
        while True:
            await asyncio.sleep(self._ping_interval)
            await self._ping()

    async def backend_call(self, action: Callable[[Core], Awaitable[T]]) -> T:
        """Run `action(core)` on the backend loop: for the app's own wiring and for tests.

        Bypasses the signed-in user, so it is not part of `Client`: panels never use it.
        """

        async def run() -> T:
            return await action(self._embedded.core)

        return await self._bridge.call(run())

    async def _as_user(self, action: Callable[[Core, Principal], Awaitable[T]]) -> T:
        return await self._bridge.call(self._embedded.as_user(action))

    # -- sign-in --------------------------------------------------------------------

    async def needs_first_admin(self) -> bool:
        return await self.backend_call(lambda core: core.users.needs_first_admin())

    async def create_first_admin(
        self, *, username: str, password: str, display_name: str = ""
    ) -> MeView:
        body = build(
            UserCreateIn,
            username=username,
            password=password,
            role="admin",
            display_name=display_name,
        )
        await self.backend_call(
            lambda core: core.users.create_first_admin(
                username=body.username, password=body.password, display_name=body.display_name
            )
        )
        return await self.sign_in(username, password)

    async def sign_in(self, username: str, password: str) -> MeView:
        body = build(LoginIn, username=username, password=password)
        return await self._bridge.call(self._embedded.sign_in(body.username, body.password))

    async def resume(self, refresh_token: str) -> MeView:
        return await self._bridge.call(self._embedded.resume(refresh_token))

    @property
    def refresh_token(self) -> str | None:
        tokens = self._embedded.tokens
        return tokens.refresh if tokens is not None else None

    async def sign_out(self) -> None:
        await self._bridge.call(self._embedded.sign_out())

    async def me(self) -> MeView:
        return me_view(await self._bridge.call(self._embedded.principal()))

    # -- users and API keys -------------------------------------------------------

    async def list_users(self) -> list[UserView]:
        return await self._as_user(lambda core, me: core.users.list(me))

    async def get_user(self, user_id: int) -> UserView:
        return await self._as_user(lambda core, me: core.users.get(me, user_id))

    async def create_user(
        self, *, username: str, password: str, role: str, display_name: str = ""
    ) -> UserView:
        body = build(
            UserCreateIn, username=username, password=password, role=role, display_name=display_name
        )
        return await self._as_user(
            lambda core, me: core.users.create(
                me,
                username=body.username,
                password=body.password,
                role=body.role.value,
                display_name=body.display_name,
            )
        )

    async def update_user(
        self,
        user_id: int,
        *,
        role: str | None = None,
        display_name: str | None = None,
        disabled: bool | None = None,
    ) -> UserView:
        body = build(UserPatchIn, role=role, display_name=display_name, disabled=disabled)
        return await self._as_user(
            lambda core, me: core.users.update(
                me,
                user_id,
                role=body.role.value if body.role is not None else None,
                display_name=body.display_name,
                disabled=body.disabled,
            )
        )

    async def delete_user(self, user_id: int) -> None:
        await self._as_user(lambda core, me: core.users.delete(me, user_id))

    async def change_own_password(self, *, current: str, new: str) -> None:
        body = build(PasswordIn, new_password=new, current_password=current)
        await self._as_user(
            lambda core, me: core.users.change_own_password(
                me, current=body.current_password or "", new=body.new_password
            )
        )

    async def reset_password(self, user_id: int, *, new: str) -> None:
        body = build(PasswordIn, new_password=new)

        async def reset(core: Core, me: Principal) -> None:
            # As the server decides: one's own password changes only with the current one.
            if user_id == me.user_id and me.kind == "user":
                raise InvalidInput(
                    "changing your own password needs the current one",
                    details={"field": "current_password"},
                )
            await core.users.reset_password(me, user_id, new=body.new_password)

        await self._as_user(reset)

    async def list_api_keys(self) -> list[ApiKeyView]:
        return await self._as_user(lambda core, me: core.api_keys.list(me))

    async def create_api_key(self, *, name: str, scopes: Sequence[str]) -> CreatedApiKey:
        body = build(ApiKeyCreateIn, name=name, scopes=list(scopes))
        return await self._as_user(
            lambda core, me: core.api_keys.create(
                me, name=body.name, scopes=[scope.value for scope in body.scopes]
            )
        )

    async def revoke_api_key(self, key_id: int) -> ApiKeyView:
        return await self._as_user(lambda core, me: core.api_keys.revoke(me, key_id))

    # -- settings -----------------------------------------------------------------

    async def list_settings(self) -> list[SettingView]:
        return await self._as_user(lambda core, me: core.settings.list(me))

    async def get_setting(self, key: str) -> SettingView:
        return await self._as_user(lambda core, me: core.settings.get(me, key))

    async def setting_history(self, key: str) -> list[SettingVersionView]:
        return await self._as_user(lambda core, me: core.settings.history(me, key))

    async def write_setting(
        self, key: str, value: Any, *, expected_version: int, reason: str = ""
    ) -> SettingView:
        body = build(SettingWriteIn, value=value, expected_version=expected_version, reason=reason)
        return await self._as_user(
            lambda core, me: core.settings.write(
                me, key, body.value, expected_version=body.expected_version, reason=body.reason
            )
        )

    async def rollback_setting(
        self,
        key: str,
        *,
        version: int,
        reason: str = "",
        expected_version: int | None = None,
    ) -> SettingView:
        body = build(RollbackIn, version=version, reason=reason, expected_version=expected_version)
        return await self._as_user(
            lambda core, me: core.settings.rollback(
                me,
                key,
                version=body.version,
                reason=body.reason,
                expected_version=body.expected_version,
            )
        )

    async def export_settings(self, *, include_secrets: bool = False) -> dict[str, Any]:
        return await self._as_user(
            lambda core, me: core.settings.export(me, include_secrets=include_secrets)
        )

    async def import_settings(
        self, document: Any, *, reason: str = "import", dry_run: bool = False
    ) -> list[SettingChange]:
        return await self._as_user(
            lambda core, me: core.settings.import_(me, document, reason=reason, dry_run=dry_run)
        )

    # -- monitoring -----------------------------------------------------------------

    async def list_hosts(self) -> list[HostView]:
        return await self._as_user(lambda core, me: core.hosts.list(me))

    async def list_series(
        self, *, host: str | None = None, metric: str | None = None
    ) -> list[SeriesView]:
        return await self._as_user(
            lambda core, me: core.metrics.series(me, host=host, metric=metric)
        )

    async def query_metrics(
        self, series_ids: Sequence[int], *, start: float, end: float, max_points: int
    ) -> list[SeriesData]:
        ids = list(series_ids)
        return await self._as_user(
            lambda core, me: core.metrics.query(me, ids, start, end, max_points)
        )

    # -- audit ------------------------------------------------------------------------

    async def list_audit(
        self, query: AuditQuery, *, before_id: int | None = None, limit: int = 100
    ) -> AuditPage:
        return await self._as_user(
            lambda core, me: core.audit.list(
                me,
                actor=query.actor,
                action=query.action,
                since=query.since,
                until=query.until,
                text=query.text,
                before_id=before_id,
                limit=limit,
            )
        )

    async def verify_audit(self) -> AuditVerification:
        return await self._as_user(lambda core, me: core.audit.verify(me))

    # -- events -----------------------------------------------------------------------

    def events(self, topics: Sequence[str], *, since: str | None = None) -> EventStream:
        wanted = list(topics)
        stream = self._bridge.stream(lambda: self._embedded.subscribe(wanted, since))
        self._streams = {open_ for open_ in self._streams if not open_.closed}
        self._streams.add(stream)
        return stream

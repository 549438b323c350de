"""`Client`: everything a panel may ask of a backend, embedded or remote.

Panels are written against this protocol only. `LocalClient` answers from
a `backend.Core` running on a backend thread; `RemoteClient` from a server
over HTTP and a WebSocket. `tests/contract/` runs one set of scenarios
against both, so the two cannot drift apart.

Every method is a coroutine awaited on the Qt (qasync) loop; none blocks
it. Failures are `console.client.errors` exceptions, identical in both
modes. Acting on behalf of the signed-in user is implicit: a client is
signed in once (`sign_in`, `resume` or `create_first_admin`) and every
later call is authorized as that user by the backend's services.

Live events come as an `EventStream`. It subscribes as soon as it is made,
so a panel that loads its state and then follows the changes misses
nothing in between, provided it waits for the subscription first:

    async with contextlib.aclosing(client.events(["users"])) as stream:
        await stream.ready()               # subscribed: later events will come
        users = await client.list_users()  # the state...
        async for message in stream:       # ...then every change after it
            if isinstance(message, StreamReset):
                users = await client.list_users()  # events were lost: reload
            else:
                ...                        # apply the event

An event published between `ready()` and the load may be both in the
loaded state and in the stream, so applying an event must be idempotent
(or compare versions); none is ever missing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

from console.client.types import (
    ApiKeyView,
    AuditPage,
    AuditQuery,
    AuditVerification,
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

StatusListener = Callable[[ConnectionStatus], None]


class EventStream(Protocol):
    """One subscription's live events, in order, until closed (see the module doc).

    An async iterator of `Event` and `StreamReset`, plus `ready()` and
    `aclose()`. Errors, the same in both modes:

    - `Forbidden` when the user may read none of the topics, `InvalidInput`
      for an unknown topic or a malformed `since`, `Unauthenticated` when
      signed out: from `ready()` and from the first read.
    - Remote only, when the first connection fails: `Unreachable`
      (`CertificateRejected` for an untrusted certificate), or
      `Unavailable` when the server cannot serve events right now (its
      database or event bus is down). The stream is then over; make a new
      one to try again.

    Once subscribed, a remote stream survives dropped links, slow reads the
    server cut off and server outages: it reconnects with backoff and
    resumes after the last event it received, so nothing is missed or
    repeated; the client's status says RECONNECTING meanwhile. When the
    resume point is no longer retained it yields `StreamReset` and goes on
    from now: reload the state. Only a refusal ends it (the role lost the
    topics, the session ended), with that error from the next read.
    """

    def __aiter__(self) -> EventStream: ...

    async def __anext__(self) -> Event | StreamReset: ...

    async def ready(self) -> None:
        """Return once subscribed: every event published from now on will be yielded.

        Raises what ended the stream before that (see the class doc). Returns
        at once on a stream closed before it subscribed, whose reading then ends.
        """
        ...

    async def aclose(self) -> None:
        """Unsubscribe and end the iteration; safe to call more than once."""
        ...


class Client(Protocol):
    @property
    def name(self) -> str:
        """What the window title and the connection indicator show."""
        ...

    @property
    def embedded(self) -> bool:
        """True for the backend inside this process."""
        ...

    # -- connection ---------------------------------------------------------------

    @property
    def status(self) -> ConnectionStatus: ...

    def add_status_listener(self, listener: StatusListener) -> Callable[[], None]:
        """Call `listener` on the Qt loop at every status change; returns the remover."""
        ...

    async def close(self) -> None:
        """Stop streams and release the connection (or stop the embedded core)."""
        ...

    # -- sign-in --------------------------------------------------------------------

    async def needs_first_admin(self) -> bool:
        """True while no user exists (a fresh embedded install)."""
        ...

    async def create_first_admin(
        self, *, username: str, password: str, display_name: str = ""
    ) -> MeView:
        """Create the first admin and sign in as them; `Conflict` once any user exists."""
        ...

    async def sign_in(self, username: str, password: str) -> MeView: ...

    async def resume(self, refresh_token: str) -> MeView:
        """Sign in with a remembered refresh token (from the keychain)."""
        ...

    @property
    def refresh_token(self) -> str | None:
        """The current refresh token, to remember; it changes at every refresh."""
        ...

    async def sign_out(self) -> None: ...

    async def me(self) -> MeView: ...

    # -- users and API keys -------------------------------------------------------

    async def list_users(self) -> list[UserView]: ...

    async def get_user(self, user_id: int) -> UserView: ...

    async def create_user(
        self, *, username: str, password: str, role: str, display_name: str = ""
    ) -> UserView: ...

    async def update_user(
        self,
        user_id: int,
        *,
        role: str | None = None,
        display_name: str | None = None,
        disabled: bool | None = None,
    ) -> UserView: ...

    async def delete_user(self, user_id: int) -> None: ...

    async def change_own_password(self, *, current: str, new: str) -> None: ...

    async def reset_password(self, user_id: int, *, new: str) -> None: ...

    async def list_api_keys(self) -> list[ApiKeyView]:
        """The signed-in user's own keys."""
        ...

    async def create_api_key(self, *, name: str, scopes: Sequence[str]) -> CreatedApiKey: ...

    async def revoke_api_key(self, key_id: int) -> ApiKeyView: ...

    # -- settings -----------------------------------------------------------------

    async def list_settings(self) -> list[SettingView]: ...

    async def get_setting(self, key: str) -> SettingView: ...

    async def setting_history(self, key: str) -> list[SettingVersionView]: ...

    async def write_setting(
        self, key: str, value: Any, *, expected_version: int, reason: str = ""
    ) -> SettingView:
        """`Conflict` (details carry the current version) when `expected_version` is stale."""
        ...

    async def rollback_setting(
        self,
        key: str,
        *,
        version: int,
        reason: str = "",
        expected_version: int | None = None,
    ) -> SettingView: ...

    async def export_settings(self, *, include_secrets: bool = False) -> dict[str, Any]: ...

    async def import_settings(
        self, document: Any, *, reason: str = "import", dry_run: bool = False
    ) -> list[SettingChange]:
        """With `dry_run`, the changes that would be applied (a preview), nothing written."""
        ...

    # -- monitoring -----------------------------------------------------------------

    async def list_hosts(self) -> list[HostView]: ...

    async def list_series(
        self, *, host: str | None = None, metric: str | None = None
    ) -> list[SeriesView]: ...

    async def query_metrics(
        self, series_ids: Sequence[int], *, start: float, end: float, max_points: int
    ) -> list[SeriesData]: ...

    # -- audit ------------------------------------------------------------------------

    async def list_audit(
        self, query: AuditQuery, *, before_id: int | None = None, limit: int = 100
    ) -> AuditPage:
        """One page, newest first; pass `next_cursor` as `before_id` for the next."""
        ...

    async def verify_audit(self) -> AuditVerification: ...

    # -- events -----------------------------------------------------------------------

    def events(self, topics: Sequence[str], *, since: str | None = None) -> EventStream:
        """Subscribe to live events of `topics` the user may read (all when empty).

        Subscribing starts at once, not at the first read: `await
        stream.ready()` before loading the state the events update (see the
        module doc). With `since`, the id of the last event seen, the stream
        starts right after it, or with a `StreamReset` when that is no
        longer retained. Close the stream when done (`aclose`, or
        `contextlib.aclosing`); `close()` closes those still open.
        """
        ...

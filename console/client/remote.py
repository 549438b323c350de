"""`RemoteClient`: a Quarterdeck server over HTTPS and a WebSocket.

Bodies are built with the server's own schemas (`backend.api.schemas`) and
answers parsed into the same domain views the embedded services return, so
a panel cannot tell the modes apart. Error bodies become the services'
exceptions again (`console.client.wire`).

The session: the access token is renewed shortly before it expires, and
once more when the server answers 401 while the refresh token still holds.
Every renewal rotates the refresh token (the server refuses a rotated one
and ends the session), so renewals are serialized and `refresh_token`
always holds the newest, the one to remember.

The link: every answer marks it LIVE, every transport failure RECONNECTING;
a ping of `/healthz` every few seconds measures the latency shown and
notices when the server is back. While an event stream is reconnecting
(the server cut it, or cannot serve it) the client stays RECONNECTING with
the stream's reason, even though plain requests are answered: the view is
not live. Listeners run on the caller's loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx
from pydantic import BaseModel, TypeAdapter

from backend.api.schemas import (
    ApiKeyCreateIn,
    LoginIn,
    PasswordIn,
    RefreshIn,
    RollbackIn,
    SettingWriteIn,
    UserCreateIn,
    UserPatchIn,
)
from backend.domain.errors import Forbidden, Unauthenticated
from backend.domain.users import TokenPair
from console.client.bodies import build
from console.client.protocol import EventStream, StatusListener
from console.client.remote_events import STREAM_BUFFER, Backoff, RemoteEventStream, StreamLink
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
    HostView,
    MeView,
    SeriesData,
    SeriesView,
    SettingChange,
    SettingVersionView,
    SettingView,
    UserView,
)
from console.client.wire import error_from_response, ssl_context, unreachable

T = TypeVar("T")

API = "/api/v1"
PING_INTERVAL = 5.0
SIGNED_OUT = "sign in first"


_ADAPTERS: dict[object, TypeAdapter[Any]] = {}
"""One validator per answer type, built at its first use."""


def _parse(kind: type[T], response: httpx.Response) -> T:
    """The response body as `kind` (a domain view or a list of them)."""
    adapter = _ADAPTERS.get(kind)
    if adapter is None:
        adapter = _ADAPTERS[kind] = TypeAdapter(kind)
    value: T = adapter.validate_json(response.content)
    return value


def _json(body: BaseModel) -> Any:
    return body.model_dump(mode="json", exclude_unset=False)


class RemoteClient:
    """The `Client` of a server (see the module docstring)."""

    def __init__(
        self,
        base_url: str,
        *,
        name: str | None = None,
        verify: bool = True,
        ca_file: str | Path | None = None,
        timeout: float = 10.0,
        ping_interval: float = PING_INTERVAL,
        backoff: Backoff | None = None,
        stream_buffer: int = STREAM_BUFFER,
    ) -> None:
        self._base = base_url.rstrip("/")
        parts = urlsplit(self._base)
        self._name = name or parts.netloc
        self._where = parts.netloc
        secure = parts.scheme == "https"
        self._ssl = ssl_context(verify=verify, ca_file=ca_file) if secure else None
        self._ws_url = ("wss" if secure else "ws") + self._base[len(parts.scheme) :] + API
        self._http = httpx.AsyncClient(
            base_url=self._base,
            verify=self._ssl if self._ssl is not None else True,
            timeout=httpx.Timeout(timeout),
        )
        self._board = StatusBoard()
        self._ping_interval = ping_interval
        self._pinger: asyncio.Task[None] | None = None
        self._backoff = backoff or Backoff()
        self._tokens: Tokens | None = None
        self._renewing: asyncio.Lock | None = None
        self._closed = False
        self._stream_buffer = stream_buffer
        self._streams: set[RemoteEventStream] = set()
        self._reconnecting: dict[RemoteEventStream, str] = {}
        """Streams that lost their connection, and why: the client is not LIVE meanwhile."""
        self._stream_link = StreamLink(
            url=self._ws_url + "/events",
            where=self._where,
            ssl=self._ssl,
            token=self._access_token,
            renew=self._renew_access,
            up=self._stream_up,
            down=self._stream_down,
            ended=self._stream_ended,
            backoff=self._backoff,
            open_timeout=timeout,
        )

    # -- connection ---------------------------------------------------------------

    @property
    def name(self) -> str:
        return self._name

    @property
    def embedded(self) -> bool:
        return False

    @property
    def status(self) -> ConnectionStatus:
        return self._board.status

    def add_status_listener(self, listener: StatusListener) -> Callable[[], None]:
        return self._board.add(listener)

    async def close(self) -> None:
        self._closed = True
        for stream in list(self._streams):
            await stream.aclose()
        if self._pinger is not None:
            self._pinger.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pinger
            self._pinger = None
        await self._http.aclose()
        self._board.set(ConnectionState.OFFLINE, detail="closed")

    def _up(self, latency_ms: float | None = None) -> None:
        """The server answered: LIVE, unless an event stream is still reconnecting."""
        if self._closed:
            return
        if self._reconnecting:
            detail = next(iter(self._reconnecting.values()))
            self._board.set(ConnectionState.RECONNECTING, latency_ms=latency_ms, detail=detail)
        else:
            self._board.set(ConnectionState.LIVE, latency_ms=latency_ms)
        if self._pinger is None:
            self._pinger = asyncio.create_task(self._keep_pinging(), name="remote-client-ping")

    def _down(self, detail: str) -> None:
        if not self._closed:
            self._board.set(ConnectionState.RECONNECTING, detail=detail)

    async def _keep_pinging(self) -> None:
        while True:
            started = time.perf_counter()
            try:
                response = await self._http.get("/healthz")
                response.raise_for_status()
            except httpx.HTTPError as error:
                self._down(unreachable(error, self._where).message)
            else:
                self._up((time.perf_counter() - started) * 1000.0)
            await asyncio.sleep(self._ping_interval)

    def _stream_up(self, stream: RemoteEventStream) -> None:
        self._reconnecting.pop(stream, None)
        self._up()

    def _stream_down(self, stream: RemoteEventStream, reason: str) -> None:
        self._reconnecting[stream] = reason
        self._down(reason)

    def _stream_ended(self, stream: RemoteEventStream) -> None:
        self._streams.discard(stream)
        self._reconnecting.pop(stream, None)

    # -- requests -------------------------------------------------------------------

    async def _request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Any = None,
        signed_in: bool = True,
    ) -> httpx.Response:
        """One API call; renews the session first when due, and once more on a 401."""
        tokens = await self._current() if signed_in else None
        response = await self._send(method, path, json=json, params=params, tokens=tokens)
        if response.status_code == 401 and tokens is not None:
            await self._renew(tokens)
            response = await self._send(method, path, json=json, params=params, tokens=self._tokens)
        if response.is_error:
            raise error_from_response(response)
        return response

    async def _send(
        self, method: str, path: str, *, json: Any, params: Any, tokens: Tokens | None
    ) -> httpx.Response:
        headers = {"Authorization": f"Bearer {tokens.access}"} if tokens is not None else None
        try:
            response = await self._http.request(
                method, API + path, json=json, params=params, headers=headers
            )
        except httpx.TransportError as error:
            failure = unreachable(error, self._where)
            self._down(failure.message)
            raise failure from error
        self._up()
        return response

    async def _current(self) -> Tokens:
        """The session's tokens, renewed first when the access token is about to expire."""
        tokens = self._tokens
        if tokens is None:
            raise Unauthenticated(SIGNED_OUT)
        if tokens.due():
            await self._renew(tokens)
            tokens = self._tokens
            if tokens is None:
                raise Unauthenticated(SIGNED_OUT)
        return tokens

    async def _renew(self, seen: Tokens) -> None:
        """Exchange the refresh token for a new pair, once, however many calls ask.

        Callers pass the tokens they used: whoever comes second finds them
        already replaced and does nothing, so a rotated token is never sent
        twice (which would end the session).
        """
        if self._renewing is None:
            self._renewing = asyncio.Lock()
        async with self._renewing:
            if self._tokens is not seen:
                return
            try:
                await self._token_pair("/auth/refresh", RefreshIn(refresh_token=seen.refresh))
            except Unauthenticated:
                self._tokens = None
                raise

    async def _token_pair(self, path: str, body: BaseModel) -> None:
        """Sign in or renew: the pair answered becomes the session's."""
        response = await self._request("POST", path, json=_json(body), signed_in=False)
        self._tokens = Tokens.issued(_parse(TokenPair, response))

    async def _access_token(self) -> str:
        return (await self._current()).access

    async def _renew_access(self, refused: str) -> None:
        tokens = self._tokens
        if tokens is None:
            raise Unauthenticated(SIGNED_OUT)
        if tokens.access == refused:
            await self._renew(tokens)

    # -- sign-in --------------------------------------------------------------------

    async def needs_first_admin(self) -> bool:
        """Always False: a server's first administrator is made on the server
        (`quarterdeck user create`), never by whoever connects first."""
        return False

    async def create_first_admin(
        self, *, username: str, password: str, display_name: str = ""
    ) -> MeView:
        raise Forbidden(
            "a server's first administrator is created on the server: "
            "quarterdeck user create --role admin"
        )

    async def sign_in(self, username: str, password: str) -> MeView:
        await self._token_pair("/auth/login", build(LoginIn, username=username, password=password))
        return await self.me()

    async def resume(self, refresh_token: str) -> MeView:
        await self._token_pair("/auth/refresh", build(RefreshIn, refresh_token=refresh_token))
        return await self.me()

    @property
    def refresh_token(self) -> str | None:
        return self._tokens.refresh if self._tokens is not None else None

    async def sign_out(self) -> None:
        if self._tokens is None:
            return
        try:
            await self._request("POST", "/auth/logout")
        finally:
            self._tokens = None

    async def me(self) -> MeView:
        return _parse(MeView, await self._request("GET", "/me"))

    # -- users and API keys -------------------------------------------------------

    async def list_users(self) -> list[UserView]:
        return _parse(list[UserView], await self._request("GET", "/users"))

    async def get_user(self, user_id: int) -> UserView:
        return _parse(UserView, await self._request("GET", f"/users/{user_id}"))

    async def create_user(
        self, *, username: str, password: str, role: str, display_name: str = ""
    ) -> UserView:
        body = build(
            UserCreateIn, username=username, password=password, role=role, display_name=display_name
        )
        return _parse(UserView, await self._request("POST", "/users", json=_json(body)))

    async def update_user(
        self,
        user_id: int,
        *,
        role: str | None = None,
        display_name: str | None = None,
        disabled: bool | None = None,
    ) -> UserView:
        body = build(UserPatchIn, role=role, display_name=display_name, disabled=disabled)
        response = await self._request(
            "PATCH", f"/users/{user_id}", json=body.model_dump(mode="json", exclude_none=True)
        )
        return _parse(UserView, response)

    async def delete_user(self, user_id: int) -> None:
        await self._request("DELETE", f"/users/{user_id}")

    async def change_own_password(self, *, current: str, new: str) -> None:
        body = build(PasswordIn, new_password=new, current_password=current)
        me = await self.me()
        await self._request("POST", f"/users/{me.id}/password", json=_json(body))

    async def reset_password(self, user_id: int, *, new: str) -> None:
        body = build(PasswordIn, new_password=new)
        await self._request(
            "POST", f"/users/{user_id}/password", json=body.model_dump(exclude_none=True)
        )

    async def list_api_keys(self) -> list[ApiKeyView]:
        return _parse(list[ApiKeyView], await self._request("GET", "/api-keys"))

    async def create_api_key(self, *, name: str, scopes: Sequence[str]) -> CreatedApiKey:
        body = build(ApiKeyCreateIn, name=name, scopes=list(scopes))
        return _parse(CreatedApiKey, await self._request("POST", "/api-keys", json=_json(body)))

    async def revoke_api_key(self, key_id: int) -> ApiKeyView:
        return _parse(ApiKeyView, await self._request("DELETE", f"/api-keys/{key_id}"))

    # -- settings -----------------------------------------------------------------

    async def list_settings(self) -> list[SettingView]:
        return _parse(list[SettingView], await self._request("GET", "/settings"))

    async def get_setting(self, key: str) -> SettingView:
        return _parse(SettingView, await self._request("GET", f"/settings/{key}"))

    async def setting_history(self, key: str) -> list[SettingVersionView]:
        response = await self._request("GET", f"/settings/{key}/history")
        return _parse(list[SettingVersionView], response)

    async def write_setting(
        self, key: str, value: Any, *, expected_version: int, reason: str = ""
    ) -> SettingView:
        body = build(SettingWriteIn, value=value, expected_version=expected_version, reason=reason)
        return _parse(SettingView, await self._request("PUT", f"/settings/{key}", json=_json(body)))

    async def rollback_setting(
        self,
        key: str,
        *,
        version: int,
        reason: str = "",
        expected_version: int | None = None,
    ) -> SettingView:
        body = build(RollbackIn, version=version, reason=reason, expected_version=expected_version)
        response = await self._request("POST", f"/settings/{key}/rollback", json=_json(body))
        return _parse(SettingView, response)

    async def export_settings(self, *, include_secrets: bool = False) -> dict[str, Any]:
        params = {"include_secrets": "true"} if include_secrets else None
        return _parse(dict[str, Any], await self._request("GET", "/settings/export", params=params))

    async def import_settings(
        self, document: Any, *, reason: str = "import", dry_run: bool = False
    ) -> list[SettingChange]:
        params = {"reason": reason, "dry_run": "true" if dry_run else "false"}
        response = await self._request("POST", "/settings/import", json=document, params=params)
        return _parse(list[SettingChange], response)

    # -- monitoring -----------------------------------------------------------------

    async def list_hosts(self) -> list[HostView]:
        return _parse(list[HostView], await self._request("GET", "/hosts"))

    async def list_series(
        self, *, host: str | None = None, metric: str | None = None
    ) -> list[SeriesView]:
        params = {key: value for key, value in (("host", host), ("metric", metric)) if value}
        return _parse(
            list[SeriesView], await self._request("GET", "/metrics/series", params=params)
        )

    async def query_metrics(
        self, series_ids: Sequence[int], *, start: float, end: float, max_points: int
    ) -> list[SeriesData]:
        params: list[tuple[str, str | int | float]] = [("series", sid) for sid in series_ids]
        params += [("start", start), ("end", end), ("max_points", max_points)]
        response = await self._request("GET", "/metrics/query", params=params)
        return _parse(list[SeriesData], response)

    # -- audit ------------------------------------------------------------------------

    async def list_audit(
        self, query: AuditQuery, *, before_id: int | None = None, limit: int = 100
    ) -> AuditPage:
        fields = {
            "actor": query.actor,
            "action": query.action,
            "since": query.since,
            "until": query.until,
            "text": query.text,
            "before_id": before_id,
            "limit": limit,
        }
        params = {key: value for key, value in fields.items() if value is not None}
        return _parse(AuditPage, await self._request("GET", "/audit", params=params))

    async def verify_audit(self) -> AuditVerification:
        return _parse(AuditVerification, await self._request("GET", "/audit/verify"))

    # -- events -----------------------------------------------------------------------

    def events(self, topics: Sequence[str], *, since: str | None = None) -> EventStream:
        stream = RemoteEventStream(self._stream_link, topics, since, buffer=self._stream_buffer)
        self._streams.add(stream)
        return stream

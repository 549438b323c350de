"""The start-up flow and the session lifecycle: who owns which client and which window.

`Shell` opens the connection window, turns a chosen target into a signed-in
client (first admin, remembered sign-in or the sign-in dialog), opens one
`MainWindow` per connection, and releases each client when its window
closes or signs out. Several connections may be open at once; choosing one
that is already open raises its window instead of opening the same backend
twice (two embedded cores on one database would both collect and both run
jobs).

Remembered sign-ins: after "remember me", the client's refresh token goes
to the keychain and is rewritten whenever the client rotates it (checked
every `TOKEN_CHECK_SECONDS` and at close), because presenting a rotated
token again would end the whole session. Signing out forgets it.

`finished()` resolves once no window is left and every client is closed;
`console.app` then stops the loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

import shiboken6
from PySide6.QtCore import QObject, QSettings, QTimer
from PySide6.QtWidgets import QWidget

from console.asyncslots import run_async
from console.client import Client
from console.client.errors import QuarterdeckError, Unauthenticated
from console.client.types import MeView
from console.connections import Connector, Embedded, Keychain, Profile, ProfileStore, Target
from console.connectwindow import ConnectionWindow
from console.mainwindow import MainWindow
from console.widgets.forms import wait_closed
from console.widgets.signin import FirstAdminDialog, SignInDialog, sign_in_message

log = logging.getLogger(__name__)

TOKEN_CHECK_SECONDS = 30.0
EMBEDDED_USERNAME_KEY = "embedded/username"
EXPIRED_SIGN_IN = "Your remembered sign-in has ended; sign in again."


class Shell(QObject):
    def __init__(
        self,
        connector: Connector,
        profiles: ProfileStore,
        keychain: Keychain,
        settings: QSettings | None = None,
    ) -> None:
        super().__init__()
        self._connector = connector
        self._profiles = profiles
        self._keychain = keychain
        self._settings = settings if settings is not None else QSettings()
        self.windows: dict[str, MainWindow] = {}
        self.connection_window: ConnectionWindow | None = None
        self._remembered: dict[str, str] = {}
        """Connection key -> the refresh token last written to the keychain."""
        self._pending: set[asyncio.Task[Any]] = set()
        self._finished: asyncio.Future[None] | None = None
        self._token_timer = QTimer(self)
        self._token_timer.setInterval(int(TOKEN_CHECK_SECONDS * 1000))
        self._token_timer.timeout.connect(self._check_tokens)
        self._token_timer.start()

    # -- windows ----------------------------------------------------------------------

    def show_connections(self) -> ConnectionWindow:
        """Show (or raise) the connection window."""
        window = self.connection_window
        if window is None:
            window = ConnectionWindow(self._profiles, self._keychain)
            window.connect_requested.connect(self._connect_requested)
            window.closed.connect(lambda: self._connection_window_closed(window))
            self.connection_window = window
            window.show()
        else:
            _bring_to_front(window)
        return window

    def _connection_window_closed(self, window: ConnectionWindow) -> None:
        if self.connection_window is window:
            self.connection_window = None
        self._check_finished()

    def _connect_requested(self, target: Target) -> None:
        window = self.connection_window
        if window is None:
            return
        self._track(
            run_async(self.open_connection(target), parent=window, what=f"connect to {target.name}")
        )

    # -- connecting -------------------------------------------------------------------

    async def open_connection(self, target: Target) -> MainWindow | None:
        """The whole flow for one target, shown in the connection window; None if abandoned."""
        existing = self.windows.get(target.key)
        if existing is not None:
            _bring_to_front(existing)
            self._close_connection_window()
            return existing
        window = self.show_connections()
        window.set_busy(f"Connecting to {target.name}…")
        try:
            client = await self._connector.open(target)
        except QuarterdeckError as error:
            if _alive(window):
                window.set_busy(None)
                window.show_error(sign_in_message(error))
            return None
        except BaseException:
            if _alive(window):
                window.set_busy(None)
            raise
        try:
            signed_in = await self._sign_in(client, target, window)
        except BaseException:
            # Cancelled (the window was closed) or failed: never leave a backend running.
            await client.close()
            if _alive(window):
                window.set_busy(None)
            raise
        if signed_in is None:
            await client.close()
            if _alive(window):
                window.set_busy(None)
            return None
        me, remember = signed_in
        main = self.open_main(client, me, target)
        run_async(self._remember(main, remember), parent=main, what="remember the sign-in")
        return main

    async def _sign_in(
        self, client: Client, target: Target, window: ConnectionWindow
    ) -> tuple[MeView, bool] | None:
        """(me, remember) once signed in; None when the person cancelled."""
        if isinstance(target, Embedded) and await client.needs_first_admin():
            window.set_busy(None)
            first = FirstAdminDialog(client, window)
            accepted = await wait_closed(first)
            me = first.me
            first.deleteLater()
            return (me, False) if accepted and me is not None else None
        available, why = self._keychain.available()
        note = ""
        saved = await self._keychain.load(target.key) if available else None
        if saved is not None:
            window.set_busy(f"Signing in to {target.name} with the remembered sign-in…")
            try:
                return await client.resume(saved), True
            except Unauthenticated:
                await self._keychain.forget(target.key)
                note = EXPIRED_SIGN_IN
        window.set_busy(None)
        dialog = SignInDialog(
            client,
            username=self._last_username(target),
            can_remember=available,
            remember_note=why,
            parent=window,
        )
        if note:
            dialog.show_error(note, "password")
        accepted = await wait_closed(dialog)
        me = dialog.me
        remember = dialog.remember.isChecked()
        username = dialog.username.text().strip()
        dialog.deleteLater()
        if not accepted or me is None:
            return None
        self._store_username(target, username)
        return me, remember

    def _last_username(self, target: Target) -> str:
        if isinstance(target, Profile):
            return target.username
        return str(self._settings.value(EMBEDDED_USERNAME_KEY, ""))

    def _store_username(self, target: Target, username: str) -> None:
        if isinstance(target, Profile):
            self._profiles.remember_username(target, username)
        else:
            self._settings.setValue(EMBEDDED_USERNAME_KEY, username)

    def open_main(self, client: Client, me: MeView, target: Target) -> MainWindow:
        main = MainWindow(client, me, key=target.key, settings=self._settings)
        self.windows[target.key] = main
        main.sign_out_requested.connect(lambda: self._start(self.sign_out(main)))
        main.closed.connect(lambda: self._start(self.release(main)))
        main.open_connections_requested.connect(self.show_connections)
        main.quit_requested.connect(self.quit)
        main.show()
        self._close_connection_window()
        return main

    def _close_connection_window(self) -> None:
        if self.connection_window is not None:
            self.connection_window.close()

    # -- remembered sign-ins ----------------------------------------------------------

    async def _remember(self, main: MainWindow, remember: bool) -> None:
        token = main.client.refresh_token
        if not remember or token is None:
            self._remembered.pop(main.key, None)
            await self._keychain.forget(main.key)
            return
        problem = await self._keychain.store(main.key, token)
        if problem:
            main.note(f"Signed in, but the sign-in is not remembered. {problem}")
            return
        self._remembered[main.key] = token

    async def _save_token(self, main: MainWindow) -> None:
        """Rewrite the keychain entry if the client rotated its refresh token."""
        last = self._remembered.get(main.key)
        token = main.client.refresh_token
        if last is None or token is None or token == last:
            return
        problem = await self._keychain.store(main.key, token)
        if not problem:
            self._remembered[main.key] = token

    def _check_tokens(self) -> None:
        for main in list(self.windows.values()):
            if main.key in self._remembered:
                self._start(self._save_token(main))

    # -- ending sessions ----------------------------------------------------------------

    async def sign_out(self, main: MainWindow) -> None:
        """End the session on the backend, forget it here, back to the connection window."""
        if self.windows.get(main.key) is not main:
            return
        del self.windows[main.key]
        self._remembered.pop(main.key, None)
        client = main.client
        await main.shutdown()
        self.show_connections().select(main.key)
        main.close_for_sign_out()
        try:
            await client.sign_out()
        except QuarterdeckError as error:
            # Offline: the session ends here anyway and expires on the server.
            log.warning("sign-out could not reach the backend: %s", error)
        finally:
            await self._keychain.forget(main.key)
            await client.close()
            main.deleteLater()
        self._check_finished()

    async def release(self, main: MainWindow) -> None:
        """The window closed: keep the sign-in if remembered, close the client."""
        if self.windows.get(main.key) is not main:
            return  # already released or signed out
        del self.windows[main.key]
        try:
            await main.shutdown()
            await self._save_token(main)
        finally:
            self._remembered.pop(main.key, None)
            await main.client.close()
            # Deleted here, on the Qt thread: left to the garbage collector, a window in a
            # reference cycle could be destroyed on the backend thread.
            main.deleteLater()
        self._check_finished()

    def quit(self) -> None:
        """Close every window; `finished()` resolves when their clients are closed."""
        for main in list(self.windows.values()):
            main.close()
        self._close_connection_window()
        self._check_finished()

    def _start(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run a session coroutine; tracked so the app waits for it before exiting."""
        self._track(run_async(coro, what="close the connection"))

    def _track(self, task: asyncio.Task[Any]) -> None:
        """Keep `finished()` waiting until `task` (which may hold a client) is over."""
        self._pending.add(task)

        def done(finished: asyncio.Task[Any]) -> None:
            self._pending.discard(finished)
            self._check_finished()

        task.add_done_callback(done)

    async def finished(self) -> None:
        """Wait until no window is open and every client is closed."""
        if self._finished is None:
            self._finished = asyncio.get_running_loop().create_future()
            self._check_finished()
        await self._finished

    @property
    def idle(self) -> bool:
        return not self.windows and self.connection_window is None and not self._pending

    def _check_finished(self) -> None:
        if self.idle and self._finished is not None and not self._finished.done():
            self._token_timer.stop()
            self._finished.set_result(None)


def _alive(widget: QWidget) -> bool:
    """False once Qt deleted the widget (a window closed while its coroutine still ran)."""
    return shiboken6.isValid(widget)


def _bring_to_front(window: QWidget) -> None:
    window.show()
    window.raise_()
    window.activateWindow()

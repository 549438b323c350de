"""One signed-in connection's window: navigation, the panels, the top bar. A thin root.

The window composes; it owns no business. Panels come from
`console.panels.registry` and are built on first view; the top bar shows
the client's status; the two session actions it cannot do alone (sign out,
open another connection) are signals to `console.startup.Shell`, which
owns clients and windows. Changing one's own password is the window's
since it needs nothing but the client.

Geometry, splitter and the last panel are remembered per connection key in
QSettings, so each profile's window comes back where it was.
"""

from __future__ import annotations

import logging

from PySide6.QtCore import QByteArray, QSettings, QSize, Qt, Signal, SignalInstance
from PySide6.QtGui import QAction, QCloseEvent, QKeySequence
from PySide6.QtWidgets import (
    QListWidget,
    QListWidgetItem,
    QMainWindow,
    QMessageBox,
    QSplitter,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from console import reporting, theme
from console.asyncslots import run_async
from console.client import Client
from console.client.types import MeView
from console.panels.placeholder import PlaceholderPanel
from console.panels.registry import (
    NAVIGATION,
    ClosablePanel,
    NavEntry,
    RevealingPanel,
    entry,
)
from console.widgets.forms import wait_closed
from console.widgets.password import ChangePasswordDialog
from console.widgets.topbar import TopBar

log = logging.getLogger(__name__)

KEY_ROLE = Qt.ItemDataRole.UserRole
DEFAULT_SIZE = QSize(1180, 760)


class MainWindow(QMainWindow):
    sign_out_requested = Signal()
    open_connections_requested = Signal()
    quit_requested = Signal()
    closed = Signal()
    """The window was closed (not signed out): its client may be released."""
    status_changed = Signal(object)
    """A `ConnectionStatus`, re-emitted on the Qt side from the client's listener."""

    def __init__(
        self,
        client: Client,
        me: MeView,
        *,
        key: str,
        settings: QSettings | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.client = client
        self.me = me
        self.key = key
        self._settings = settings if settings is not None else QSettings()
        self._pages: dict[str, QWidget] = {}
        self._signing_out = False
        self._closed_once = False
        self._shut_down = False
        self.setObjectName("MainWindow")
        self.setWindowTitle(f"{client.name} · {me.username} — Quarterdeck")
        self.setWindowIcon(theme.icon("quarterdeck"))

        self.top_bar = TopBar(client.name, client.embedded, me, self)
        self.top_bar.change_password_requested.connect(self.change_password)
        self.top_bar.sign_out_requested.connect(self.sign_out_requested)

        self._build_body()
        central = QWidget(self)
        layout = QVBoxLayout(central)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self.top_bar)
        layout.addWidget(self.splitter, 1)
        self.setCentralWidget(central)
        self._build_menus()
        self._draw_icons()
        manager = theme.manager()
        if manager is not None:
            manager.changed.connect(self._draw_icons)

        self.status_changed.connect(self.top_bar.set_status)
        self.top_bar.set_status(client.status)
        remove = client.add_status_listener(self.status_changed.emit)
        self._listening = True

        def stop_listening() -> None:
            if self._listening:
                self._listening = False
                remove()

        self._remove_listener = stop_listening
        self.nav.currentItemChanged.connect(self._nav_changed)
        self._restore()

    # -- building -----------------------------------------------------------------------

    def _build_body(self) -> None:
        """The navigation list and the panel stack, side by side in a splitter."""
        self.nav = QListWidget(self)
        self.nav.setObjectName("NavList")
        self.nav.setIconSize(QSize(20, 20))
        self.nav.setUniformItemSizes(True)
        self.nav.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        for nav_entry in NAVIGATION:
            item = QListWidgetItem(nav_entry.title, self.nav)
            item.setData(KEY_ROLE, nav_entry.key)
            if not nav_entry.allowed(self.me):
                item.setFlags(item.flags() & ~Qt.ItemFlag.ItemIsEnabled)
                item.setToolTip(nav_entry.denied)
        self.nav.setMinimumWidth(170)
        self.stack = QStackedWidget(self)
        self.stack.setObjectName("PanelStack")
        self.splitter = QSplitter(Qt.Orientation.Horizontal, self)
        self.splitter.setObjectName("MainSplitter")
        self.splitter.addWidget(self.nav)
        self.splitter.addWidget(self.stack)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setCollapsible(1, False)
        self.splitter.setHandleWidth(1)
        self.splitter.setSizes([190, 990])

    def _build_menus(self) -> None:
        bar = self.menuBar()
        connection = bar.addMenu("&Connection")
        another = connection.addAction("Open another connection…")
        another.setShortcut(QKeySequence("Ctrl+Shift+N"))
        another.triggered.connect(self.open_connections_requested)
        connection.addSeparator()
        connection.addAction(self.top_bar.change_password_action)
        connection.addAction(self.top_bar.sign_out_action)
        connection.addSeparator()
        close = connection.addAction("Close window")
        close.setShortcut(QKeySequence(QKeySequence.StandardKey.Close))
        close.triggered.connect(self.close)
        quit_action = connection.addAction("Quit")
        quit_action.setShortcut(QKeySequence(QKeySequence.StandardKey.Quit))
        quit_action.setMenuRole(QAction.MenuRole.QuitRole)
        quit_action.triggered.connect(self.quit_requested)
        view = bar.addMenu("&View")
        for number, nav_entry in enumerate(NAVIGATION, start=1):
            action = view.addAction(nav_entry.title)
            action.setShortcut(QKeySequence(f"Ctrl+{number}"))
            action.setEnabled(nav_entry.allowed(self.me))
            action.triggered.connect(lambda _=False, k=nav_entry.key: self.show_panel(k))
        help_menu = bar.addMenu("&Help")
        about = help_menu.addAction("About Quarterdeck")
        about.setMenuRole(QAction.MenuRole.AboutRole)
        about.triggered.connect(self._about)

    def _draw_icons(self, *_: object) -> None:
        for row, nav_entry in enumerate(NAVIGATION):
            item = self.nav.item(row)
            if item is not None:
                item.setIcon(theme.icon(nav_entry.icon))

    def _about(self) -> None:
        box = QMessageBox(self)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.setWindowTitle("About Quarterdeck")
        box.setIconPixmap(theme.icon("quarterdeck").pixmap(QSize(64, 64)))
        box.setText("Quarterdeck")
        box.setInformativeText(
            "A desktop operations console: hosts, live metrics, users, configuration and "
            "the audit log, embedded or on a remote cluster."
        )
        box.open()

    # -- panels ---------------------------------------------------------------------------

    def current_key(self) -> str | None:
        item = self.nav.currentItem()
        return str(item.data(KEY_ROLE)) if item is not None else None

    def show_panel(self, key: str) -> QWidget:
        """Select `key` in the navigation and return its page (built now if needed)."""
        nav_entry = entry(key)
        row = NAVIGATION.index(nav_entry)
        item = self.nav.item(row)
        if item is not None and item.flags() & Qt.ItemFlag.ItemIsEnabled:
            self.nav.setCurrentRow(row)
        return self.page(key)

    def page(self, key: str) -> QWidget:
        """The page of `key`, building it on first use."""
        existing = self._pages.get(key)
        if existing is not None:
            return existing
        page = self._build_page(entry(key))
        self._pages[key] = page
        self.stack.addWidget(page)
        leads = getattr(page, "navigate_requested", None)
        if isinstance(leads, SignalInstance):
            leads.connect(self.navigate)
        return page

    def navigate(self, key: str, target: str) -> None:
        """Show the entry `key` and, in it, `target` (a panel's `navigate_requested`)."""
        page = self.show_panel(key)
        if self.current_key() == key and isinstance(page, RevealingPanel):
            page.reveal(target)

    def built_pages(self) -> dict[str, QWidget]:
        return dict(self._pages)

    def _build_page(self, nav_entry: NavEntry) -> QWidget:
        if not nav_entry.allowed(self.me):
            return PlaceholderPanel(nav_entry.title, nav_entry.denied, nav_entry.icon, self.stack)
        try:
            factory = nav_entry.load()
            if factory is None:
                return PlaceholderPanel(
                    nav_entry.title, nav_entry.not_built, nav_entry.icon, self.stack
                )
            return factory(self.client, self.me, self.stack)
        except Exception as error:
            # A broken panel must not take the window (and the other panels) down with it.
            log.exception("the %s panel failed to build", nav_entry.title)
            return PlaceholderPanel(
                f"{nav_entry.title} could not be opened",
                f"{reporting.describe(error)} The details are in the log.",
                "placeholder",
                self.stack,
            )

    def _nav_changed(self, current: QListWidgetItem | None, _previous: object) -> None:
        if current is None:
            return
        self.stack.setCurrentWidget(self.page(str(current.data(KEY_ROLE))))

    # -- session --------------------------------------------------------------------------

    def change_password(self) -> None:
        dialog = ChangePasswordDialog(self.client, self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)

        async def run() -> None:
            if await wait_closed(dialog):
                self.statusBar().showMessage("Your password was changed.", 8000)

        run_async(run(), parent=self, what="change the password")

    def note(self, message: str) -> None:
        """A passing remark in the status bar (e.g. a sign-in that could not be remembered)."""
        self.statusBar().showMessage(message, 15000)

    async def shutdown(self) -> None:
        """Let every built panel stop its work before the client closes (once)."""
        self._remove_listener()
        if self._shut_down:
            return
        self._shut_down = True
        for key, page in list(self._pages.items()):
            if isinstance(page, ClosablePanel):
                try:
                    await page.shutdown()
                except Exception:
                    log.exception("the %s panel failed to shut down", key)

    def close_for_sign_out(self) -> None:
        """Close without emitting `closed`: the shell is already ending the session."""
        self._signing_out = True
        self.close()

    # -- layout memory --------------------------------------------------------------------

    def _group(self) -> str:
        return f"windows/{self.key.replace('/', '_')}"

    def _restore(self) -> None:
        s = self._settings
        geometry = s.value(f"{self._group()}/geometry")
        if isinstance(geometry, QByteArray) and not geometry.isEmpty():
            self.restoreGeometry(geometry)
        else:
            self.resize(DEFAULT_SIZE)
        splitter = s.value(f"{self._group()}/splitter")
        if isinstance(splitter, QByteArray) and not splitter.isEmpty():
            self.splitter.restoreState(splitter)
        state = s.value(f"{self._group()}/state")
        if isinstance(state, QByteArray) and not state.isEmpty():
            self.restoreState(state)
        last = str(s.value(f"{self._group()}/panel", NAVIGATION[0].key))
        keys = [e.key for e in NAVIGATION if e.allowed(self.me)]
        if last not in keys:
            last = keys[0] if keys else NAVIGATION[0].key
        self.show_panel(last)

    def _save(self) -> None:
        s = self._settings
        s.setValue(f"{self._group()}/geometry", self.saveGeometry())
        s.setValue(f"{self._group()}/state", self.saveState())
        s.setValue(f"{self._group()}/splitter", self.splitter.saveState())
        current = self.current_key()
        if current is not None:
            s.setValue(f"{self._group()}/panel", current)
        s.sync()

    def closeEvent(self, event: QCloseEvent) -> None:
        self._save()
        self._remove_listener()
        super().closeEvent(event)
        if not self._signing_out and not self._closed_once:
            self._closed_once = True
            self.closed.emit()

"""The strip above the panels: which backend, its connection state, and who is signed in."""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QHBoxLayout, QLabel, QMenu, QToolButton, QWidget

from console import theme
from console.client.types import ConnectionStatus, MeView
from console.widgets.status import ConnectionIndicator


class TopBar(QWidget):
    """Shows; decides nothing. The window connects the two requests to what they do."""

    change_password_requested = Signal()
    sign_out_requested = Signal()

    def __init__(
        self, connection_name: str, embedded: bool, me: MeView, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.setObjectName("TopBar")
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground)
        self._embedded = embedded
        self._kind = QLabel(self)
        self.connection_label = QLabel(connection_name, self)
        self.connection_label.setObjectName("ConnectionName")
        self.indicator = ConnectionIndicator(self)
        self.user_button = QToolButton(self)
        self.user_button.setObjectName("UserButton")
        self.user_button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.user_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.user_button.setAutoRaise(True)
        role = f" ({me.role.value})" if me.role is not None else ""
        self.user_button.setText(f"{me.username}{role}  ▾")
        self.user_button.setToolTip(f"Signed in as {me.username}{role}")
        menu = QMenu(self.user_button)
        self.change_password_action = QAction("Change password…", menu)
        self.change_password_action.triggered.connect(self.change_password_requested)
        self.sign_out_action = QAction("Sign out", menu)
        self.sign_out_action.triggered.connect(self.sign_out_requested)
        menu.addAction(self.change_password_action)
        menu.addSeparator()
        menu.addAction(self.sign_out_action)
        self.user_button.setMenu(menu)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(12, 6, 8, 6)
        layout.setSpacing(8)
        layout.addWidget(self._kind)
        layout.addWidget(self.connection_label)
        layout.addSpacing(12)
        layout.addWidget(self.indicator)
        layout.addStretch(1)
        layout.addWidget(self.user_button)
        self._draw_icons()
        manager = theme.manager()
        if manager is not None:
            manager.changed.connect(self._draw_icons)

    def set_status(self, status: ConnectionStatus) -> None:
        self.indicator.set_status(status)

    def _draw_icons(self, *_: object) -> None:
        kind = "embedded" if self._embedded else "remote"
        self._kind.setPixmap(theme.icon(kind).pixmap(QSize(18, 18)))
        self._kind.setToolTip("Embedded backend" if self._embedded else "Remote server")
        self.user_button.setIcon(theme.icon("user"))
        self.user_button.setIconSize(QSize(18, 18))
        self.indicator.set_status(self.indicator.status)

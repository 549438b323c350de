"""The first window: choose the embedded backend or a saved server, or add one.

It manages profiles (new, edit, delete) and remembered sign-ins (forget)
itself, since they need nothing but `ProfileStore` and `Keychain`.
Connecting is `console.startup.Shell`'s job: the window emits
`connect_requested` and shows whatever progress or error the shell reports
through `set_busy` and `show_error`.
"""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QCloseEvent
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from console import theme
from console.asyncslots import async_slot, run_async
from console.connections import Embedded, Keychain, Profile, ProfileStore, Target
from console.widgets.forms import wait_closed
from console.widgets.profile import ProfileDialog

TARGET_ROLE = Qt.ItemDataRole.UserRole


class ConnectionWindow(QWidget):
    connect_requested = Signal(object)
    """The chosen `Target` (Embedded or Profile)."""
    closed = Signal()

    def __init__(
        self, profiles: ProfileStore, keychain: Keychain, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.setObjectName("ConnectionWindow")
        self.setWindowTitle("Quarterdeck — Connect")
        self.setWindowIcon(theme.icon("quarterdeck"))
        self.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self._profiles = profiles
        self._keychain = keychain
        self._busy = False

        header = self._build_header()

        self.list = QListWidget(self)
        self.list.setObjectName("ConnectionList")
        self.list.setIconSize(QSize(24, 24))
        self.list.itemDoubleClicked.connect(lambda _item: self._connect())
        self.list.currentItemChanged.connect(lambda *_: self._selection_changed())

        side = self._build_buttons()
        middle = QHBoxLayout()
        middle.addWidget(self.list, 1)
        middle.addLayout(side)

        self.progress = QProgressBar(self)
        self.progress.setRange(0, 0)
        self.progress.setTextVisible(False)
        self.progress.setMaximumHeight(6)
        self.progress.hide()
        self.message = QLabel(self)
        self.message.setWordWrap(True)
        self.message.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.message.hide()
        available, why = keychain.available()
        self.keychain_note = QLabel(why, self)
        self.keychain_note.setObjectName("Muted")
        self.keychain_note.setWordWrap(True)
        self.keychain_note.setVisible(not available)
        bottom = QHBoxLayout()
        bottom.addStretch(1)
        bottom.addWidget(self.connect_button)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(20, 18, 20, 18)
        layout.setSpacing(10)
        layout.addLayout(header)
        layout.addLayout(middle, 1)
        layout.addWidget(self.progress)
        layout.addWidget(self.message)
        layout.addWidget(self.keychain_note)
        layout.addLayout(bottom)
        self.resize(620, 430)
        self.reload()

    def _build_header(self) -> QHBoxLayout:
        logo = QLabel(self)
        logo.setPixmap(theme.icon("quarterdeck").pixmap(QSize(48, 48)))
        banner = QLabel("Quarterdeck", self)
        banner.setObjectName("Banner")
        subtitle = QLabel("Choose where to connect.", self)
        subtitle.setObjectName("Muted")
        heading = QVBoxLayout()
        heading.setSpacing(0)
        heading.addWidget(banner)
        heading.addWidget(subtitle)
        header = QHBoxLayout()
        header.addWidget(logo)
        header.addSpacing(6)
        header.addLayout(heading, 1)
        return header

    def _build_buttons(self) -> QVBoxLayout:
        """The connect button (placed at the bottom) and the profile buttons beside the list."""
        self.connect_button = QPushButton("Connect", self)
        self.connect_button.setObjectName("ConnectButton")
        self.connect_button.setDefault(True)
        self.connect_button.clicked.connect(self._connect)
        self.new_button = QPushButton("New profile…", self)
        self.new_button.clicked.connect(self.new_profile)
        self.edit_button = QPushButton("Edit…", self)
        self.edit_button.clicked.connect(self.edit_profile)
        self.delete_button = QPushButton("Delete", self)
        self.delete_button.clicked.connect(self.delete_profile)
        self.forget_button = QPushButton("Forget sign-in", self)
        self.forget_button.setToolTip("Remove the remembered sign-in from this computer's keychain")
        self.forget_button.clicked.connect(self.forget_sign_in)
        side = QVBoxLayout()
        for button in (self.new_button, self.edit_button, self.delete_button, self.forget_button):
            side.addWidget(button)
        side.addStretch(1)
        return side

    # -- the list -------------------------------------------------------------------------

    def reload(self, select: str | None = None) -> None:
        """Rebuild the list from the store; keep (or move) the selection by connection key."""
        keep = select or self._selected_key()
        self.list.clear()
        embedded = Embedded()
        self._add_item(embedded, "The backend inside this app, on this computer's data")
        for profile in self._profiles.list():
            who = f" · {profile.username}" if profile.username else ""
            self._add_item(profile, f"{profile.url}{who}")
        rows = [self._target(self.list.item(i)).key for i in range(self.list.count())]
        self.list.setCurrentRow(rows.index(keep) if keep in rows else 0)

    def _add_item(self, target: Target, detail: str) -> None:
        item = QListWidgetItem(f"{target.name}\n{detail}", self.list)
        item.setIcon(theme.icon("embedded" if isinstance(target, Embedded) else "remote"))
        item.setData(TARGET_ROLE, target)
        item.setToolTip(detail)

    @staticmethod
    def _target(item: QListWidgetItem) -> Target:
        target = item.data(TARGET_ROLE)
        assert isinstance(target, Embedded | Profile)
        return target

    def selected(self) -> Target | None:
        item = self.list.currentItem()
        return self._target(item) if item is not None else None

    def select(self, key: str) -> None:
        for row in range(self.list.count()):
            item = self.list.item(row)
            if item is not None and self._target(item).key == key:
                self.list.setCurrentRow(row)

    def _selected_key(self) -> str | None:
        target = self.selected()
        return target.key if target is not None else None

    def _selection_changed(self) -> None:
        target = self.selected()
        is_profile = isinstance(target, Profile)
        self.edit_button.setEnabled(is_profile and not self._busy)
        self.delete_button.setEnabled(is_profile and not self._busy)
        self.forget_button.setEnabled(False)
        if target is not None:
            run_async(self._update_forget(target), parent=self, what="read the keychain")

    async def _update_forget(self, target: Target) -> None:
        saved = await self._keychain.load(target.key) is not None
        if self.selected() == target:
            self.forget_button.setEnabled(saved and not self._busy)

    # -- what the shell reports -----------------------------------------------------------

    def set_busy(self, text: str | None) -> None:
        """Show progress with `text`, or None to end it; the list is frozen meanwhile."""
        self._busy = text is not None
        self.progress.setVisible(self._busy)
        for widget in (self.list, self.connect_button, self.new_button):
            widget.setEnabled(not self._busy)
        if text is not None:
            self.message.setObjectName("Muted")
            self._set_message(text)
        else:
            self.message.hide()
        self._selection_changed()

    def show_error(self, text: str) -> None:
        self.message.setObjectName("ErrorLabel")
        self._set_message(text)

    def show_note(self, text: str) -> None:
        self.message.setObjectName("Muted")
        self._set_message(text)

    def message_text(self) -> str:
        return self.message.text() if not self.message.isHidden() else ""

    def _set_message(self, text: str) -> None:
        self.message.setText(text)
        self.message.style().unpolish(self.message)
        self.message.style().polish(self.message)
        self.message.show()

    # -- actions --------------------------------------------------------------------------

    def _connect(self) -> None:
        target = self.selected()
        if target is not None and not self._busy:
            self.message.hide()
            self.connect_requested.emit(target)

    @async_slot("save the profile")
    async def new_profile(self) -> None:
        dialog = ProfileDialog(self._profiles, parent=self)
        if await wait_closed(dialog) and dialog.profile is not None:
            self.reload(select=dialog.profile.key)
        dialog.deleteLater()

    @async_slot("save the profile")
    async def edit_profile(self) -> None:
        target = self.selected()
        if not isinstance(target, Profile):
            return
        dialog = ProfileDialog(self._profiles, target, parent=self)
        if await wait_closed(dialog) and dialog.profile is not None:
            self.reload(select=dialog.profile.key)
        dialog.deleteLater()

    @async_slot("delete the profile")
    async def delete_profile(self) -> None:
        target = self.selected()
        if not isinstance(target, Profile):
            return
        box = QMessageBox(
            QMessageBox.Icon.Question,
            "Delete profile",
            f"Delete the profile {target.name}? Its remembered sign-in is forgotten too.",
            QMessageBox.StandardButton.Cancel,
            self,
        )
        delete = box.addButton("Delete", QMessageBox.ButtonRole.DestructiveRole)
        box.setDefaultButton(QMessageBox.StandardButton.Cancel)
        await wait_closed(box)
        confirmed = box.clickedButton() is delete
        box.deleteLater()
        if not confirmed:
            return
        await self._keychain.forget(target.key)
        self._profiles.delete(target)
        self.reload()

    @async_slot("forget the sign-in")
    async def forget_sign_in(self) -> None:
        target = self.selected()
        if target is None:
            return
        await self._keychain.forget(target.key)
        self.show_note(f"The remembered sign-in for {target.name} was removed from the keychain.")
        self._selection_changed()

    def closeEvent(self, event: QCloseEvent) -> None:
        # The list emits selection changes while it is torn down; nothing to look up then.
        self.list.blockSignals(True)
        super().closeEvent(event)
        self.closed.emit()

"""Create or edit a remote connection profile."""

from __future__ import annotations

from dataclasses import replace

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QCheckBox, QFileDialog, QHBoxLayout, QLineEdit, QPushButton, QWidget

from console.connections import Profile, ProfileStore
from console.widgets.forms import FormDialog


class ProfileDialog(FormDialog):
    """Name, server URL, username, TLS verification (on by default) and an optional CA file.

    Saving goes through `ProfileStore.save`, which holds the rules; the
    stored profile is in `.profile` afterwards.
    """

    def __init__(
        self, store: ProfileStore, profile: Profile | None = None, parent: QWidget | None = None
    ) -> None:
        editing = profile is not None
        super().__init__(
            "Edit connection profile" if editing else "New connection profile",
            "A Quarterdeck server to connect to. Nothing secret is saved here; a remembered "
            "sign-in lives in this computer's keychain.",
            parent,
        )
        self._store = store
        self._original = profile or Profile(name="", url="")
        self.profile: Profile | None = None
        self.name = self.line_edit("name", "Name", self._original.name)
        self.name.setPlaceholderText("Production cluster")
        self.url = self.line_edit("url", "Server URL", self._original.url)
        self.url.setPlaceholderText("https://quarterdeck.example:8443")
        self.username = self.line_edit("username", "Username", self._original.username)
        self.verify_tls = QCheckBox("Verify the server's TLS certificate", self)
        self.verify_tls.setChecked(self._original.verify_tls)
        self.verify_tls.setToolTip(
            "Leave this on. Without verification anyone on the network path can pose as "
            "the server and read your password."
        )
        self.add_field("verify_tls", "", self.verify_tls)
        row = QWidget(self)
        self.ca_file = QLineEdit(self._original.ca_file, row)
        self.ca_file.setPlaceholderText("system certificate authorities")
        browse = QPushButton("Browse…", row)
        browse.clicked.connect(self._browse)
        line = QHBoxLayout(row)
        line.setContentsMargins(0, 0, 0, 0)
        line.addWidget(self.ca_file)
        line.addWidget(browse)
        self.form.addRow("CA certificate (optional)", row)
        self.ca_file.setObjectName("ca_file")
        self._fields["ca_file"] = self.ca_file
        self.verify_tls.toggled.connect(row.setEnabled)
        row.setEnabled(self._original.verify_tls)
        self.set_ok_text("Save")
        self.name.setFocus()

    def _browse(self) -> None:
        # open(), not the static getOpenFileName: that one runs a nested event loop.
        chooser = QFileDialog(
            self, "CA certificate", self.ca_file.text(), "PEM certificates (*.pem *.crt);;All (*)"
        )
        chooser.setFileMode(QFileDialog.FileMode.ExistingFile)
        chooser.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        chooser.fileSelected.connect(self.ca_file.setText)
        chooser.open()

    async def submit(self) -> None:
        self.profile = self._store.save(
            replace(
                self._original,
                name=self.name.text(),
                url=self.url.text(),
                username=self.username.text(),
                verify_tls=self.verify_tls.isChecked(),
                ca_file=self.ca_file.text() if self.verify_tls.isChecked() else "",
            )
        )

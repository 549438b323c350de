"""Sign-in and first-admin dialogs: the forms in front of every session.

They call the `Client` they are given and keep the `MeView` it returns in
`.me`; deciding which one to show, and remembering the sign-in, is the
start-up flow's job (`console.startup`). Errors are worded for a person at
a sign-in screen: which of wrong password, locked account, unreachable
server or untrusted certificate it was, and what to do about it.
"""

from __future__ import annotations

from PySide6.QtWidgets import QCheckBox, QLabel, QWidget

from console.client import Client
from console.client.errors import (
    CertificateRejected,
    InvalidInput,
    QuarterdeckError,
    RateLimited,
    Unauthenticated,
    Unreachable,
)
from console.client.types import MeView
from console.reporting import describe, sentence
from console.widgets.forms import FormDialog


def _wait(seconds: float) -> str:
    if seconds >= 90:
        return f"about {round(seconds / 60)} minutes"
    return f"{max(1, round(seconds))} seconds"


def sign_in_message(error: QuarterdeckError) -> str:
    """The message a sign-in form shows for `error`."""
    if isinstance(error, CertificateRejected):
        return (
            f"The server's certificate is not trusted. {describe(error)} If the server uses a "
            "private certificate authority, choose its certificate file in the profile."
        )
    if isinstance(error, Unreachable):
        return f"Cannot reach the server. {describe(error)} Check the address and the network."
    if isinstance(error, RateLimited):
        return f"{sentence(error.message)} Try again in {_wait(error.retry_after)}."
    if isinstance(error, Unauthenticated):
        return "Wrong username or password."
    return describe(error)


class SignInDialog(FormDialog):
    """Username, password and "remember me"; `.me` once signed in."""

    def __init__(
        self,
        client: Client,
        *,
        username: str = "",
        can_remember: bool = True,
        remember_note: str = "",
        parent: QWidget | None = None,
    ) -> None:
        super().__init__("Sign in", f"Sign in to {client.name}.", parent)
        self._client = client
        self.me: MeView | None = None
        self.username = self.line_edit("username", "Username", username)
        self.password = self.line_edit("password", "Password", password=True)
        self.remember = QCheckBox("Remember me on this computer", self)
        self.remember.setObjectName("remember")
        self.remember.setEnabled(can_remember)
        if can_remember:
            self.remember.setToolTip("Keeps the sign-in in this computer's keychain.")
        else:
            self.remember.setToolTip(remember_note)
        self.form.addRow("", self.remember)
        if not can_remember and remember_note:
            note = QLabel(remember_note, self)
            note.setObjectName("Muted")
            note.setWordWrap(True)
            self.form.addRow("", note)
        self.set_ok_text("Sign in")
        (self.password if username else self.username).setFocus()

    def message_for(self, error: QuarterdeckError) -> str:
        return sign_in_message(error)

    def show_error(self, message: str, field: str | None = None) -> None:
        # Wrong credentials: retype the password, keep the name.
        super().show_error(message, field or "password")

    async def submit(self) -> None:
        self.me = await self._client.sign_in(self.username.text().strip(), self.password.text())


class FirstAdminDialog(FormDialog):
    """Creates the first administrator of a fresh embedded installation, then signs in."""

    def __init__(self, client: Client, parent: QWidget | None = None) -> None:
        super().__init__(
            "Create the first administrator",
            "Welcome to Quarterdeck. Nobody has an account on this computer's backend yet: "
            "create the administrator account. You can add more users later.",
            parent,
        )
        self._client = client
        self.me: MeView | None = None
        self.username = self.line_edit("username", "Username", "admin")
        self.display_name = self.line_edit("display_name", "Display name (optional)")
        self.password = self.line_edit("password", "Password", password=True)
        self.password.setPlaceholderText("at least 8 characters")
        self.confirm = self.line_edit("confirm", "Repeat password", password=True)
        self.set_ok_text("Create and sign in")
        self.username.setFocus()
        self.username.selectAll()

    async def submit(self) -> None:
        if self.password.text() != self.confirm.text():
            raise InvalidInput("the two passwords differ", details={"field": "confirm"})
        self.me = await self._client.create_first_admin(
            username=self.username.text().strip(),
            password=self.password.text(),
            display_name=self.display_name.text().strip(),
        )

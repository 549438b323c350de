"""Change one's own password: current, new, repeated."""

from __future__ import annotations

from PySide6.QtWidgets import QWidget

from console.client import Client
from console.client.errors import InvalidInput, QuarterdeckError
from console.reporting import describe
from console.widgets.forms import FormDialog


class ChangePasswordDialog(FormDialog):
    """The backend checks the current password and the new one's rules; this form only
    checks that the new one was typed the same twice."""

    def __init__(self, client: Client, parent: QWidget | None = None) -> None:
        super().__init__(
            "Change password",
            "Other sessions of your account are signed out; this one stays signed in.",
            parent,
        )
        self._client = client
        self.current = self.line_edit("current", "Current password", password=True)
        self.new = self.line_edit("new", "New password", password=True)
        self.new.setPlaceholderText("at least 8 characters")
        self.confirm = self.line_edit("confirm", "Repeat new password", password=True)
        self.set_ok_text("Change password")
        self.current.setFocus()

    def message_for(self, error: QuarterdeckError) -> str:
        if isinstance(error, InvalidInput) and error.details.get("field") == "current":
            return "The current password is not correct."
        return describe(error)

    async def submit(self) -> None:
        if self.new.text() != self.confirm.text():
            raise InvalidInput("the two new passwords differ", details={"field": "confirm"})
        try:
            await self._client.change_own_password(current=self.current.text(), new=self.new.text())
        except InvalidInput as error:
            if error.details.get("field") == "password" or "password" in str(
                error.details.get("errors", "")
            ):
                # The rule is about the new password, whatever the backend calls the field.
                error.details["field"] = "new"
            raise

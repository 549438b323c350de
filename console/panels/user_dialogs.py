"""The users panel's forms: new user, edit, reset password.

They are `FormDialog`s (async submit, busy bar, the backend's error shown
above the buttons with what was typed kept) that also check as the person
types, with the backend's own rules (`console.client.rules`): a hint under
a field once it has been edited, and OK disabled with the first problem as
its tooltip until the form can be sent. The backend still decides; its
answer (a taken username, say) is shown in place like any other error.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import cast

from PySide6.QtWidgets import QComboBox, QFormLayout, QLabel, QLineEdit, QWidget

from console.client import Client
from console.client.errors import InvalidInput
from console.client.rules import (
    MIN_PASSWORD,
    check_display_name,
    check_password,
    check_username,
)
from console.client.types import Role, UserView
from console.models.users import ROLE_TITLES
from console.reporting import sentence
from console.widgets.forms import FormDialog

Check = Callable[[], str | None]
"""A field's rule: the problem with what is typed now, or None."""


def backend_rule(rule: Callable[[str], object], text: str) -> str | None:
    """Run one of the backend's check functions; its message when it refuses."""
    try:
        rule(text)
    except InvalidInput as error:
        return sentence(error.message)
    return None


class CheckedForm(FormDialog):
    """A `FormDialog` whose fields carry rules, checked as the person types."""

    def __init__(self, title: str, intro: str = "", parent: QWidget | None = None) -> None:
        super().__init__(title, intro, parent)
        self._checks: list[tuple[str, Check]] = []
        self._hints: dict[str, QLabel] = {}
        self._touched: set[str] = set()

    def check_field(self, name: str, edit: QLineEdit, check: Check) -> None:
        """Give `name` a rule and a hint row under it; re-check on every edit."""
        hint = QLabel(self)
        hint.setObjectName("ErrorLabel")
        hint.setWordWrap(True)
        hint.setProperty("hint_for", name)
        position = cast(tuple[int, QFormLayout.ItemRole], self.form.getWidgetPosition(edit))
        row = position[0]
        self.form.insertRow(row + 1, "", hint)  # right under its field
        self.form.setRowVisible(hint, False)
        self._hints[name] = hint
        self._checks.append((name, check))

        def edited(_text: str) -> None:
            self._touched.add(name)
            self.revalidate()

        edit.textEdited.connect(edited)

    def add_check(self, name: str, check: Check) -> None:
        """A rule without a hint row (checkboxes): OK's tooltip names its problem."""
        self._checks.append((name, check))

    def hint(self, name: str) -> str:
        """The hint shown under `name` ("" when none)."""
        label = self._hints.get(name)
        return label.text() if label is not None and self.form.isRowVisible(label) else ""

    def problem(self) -> str | None:
        """The first problem of the form, or None when it can be sent."""
        for _name, check in self._checks:
            found = check()
            if found:
                return found
        return None

    def revalidate(self) -> None:
        changed = False
        for name, check in self._checks:
            label = self._hints.get(name)
            if label is None:
                continue
            found = check() if name in self._touched else None
            if label.text() != (found or ""):
                changed = True
                label.setText(found or "")
                self.form.setRowVisible(label, bool(found))
        if changed and self.isVisible():
            # Wrapped hints need height the dialog did not have when it opened.
            self.adjustSize()
        first = self.problem()
        ok = self.ok_button()
        ok.setEnabled(first is None and not self.busy)
        ok.setToolTip(first or "")

    def _set_busy(self, busy: bool) -> None:
        super()._set_busy(busy)
        if not busy:
            self.revalidate()


def role_combo(parent: QWidget, current: Role) -> QComboBox:
    combo = QComboBox(parent)
    for role in Role:
        combo.addItem(ROLE_TITLES.get(role, role.value), role.value)
    combo.setCurrentIndex(combo.findData(current.value))
    return combo


def _username_problem(edit: QLineEdit) -> Check:
    def check() -> str | None:
        if not edit.text().strip():
            return "Type a username."
        return backend_rule(check_username, edit.text())

    return check


def _password_problems(new: QLineEdit, repeat: QLineEdit) -> tuple[Check, Check]:
    def first() -> str | None:
        if not new.text():
            return "Type a password."
        return backend_rule(check_password, new.text())

    def second() -> str | None:
        if new.text() != repeat.text():
            return "The two passwords differ."
        return None

    return first, second


class NewUserDialog(CheckedForm):
    def __init__(self, client: Client, parent: QWidget | None = None) -> None:
        super().__init__(
            "New user", "The new user signs in with this username and password.", parent
        )
        self._client = client
        self.created: UserView | None = None
        self.username = self.line_edit("username", "Username")
        self.username.setPlaceholderText("e.g. otto or otto@example.org")
        self.check_field("username", self.username, _username_problem(self.username))
        self.display_name = self.line_edit("display_name", "Display name")
        self.display_name.setPlaceholderText("optional")
        self.check_field(
            "display_name",
            self.display_name,
            lambda: backend_rule(check_display_name, self.display_name.text()),
        )
        self.role = role_combo(self, Role.VIEWER)
        self.role.setToolTip(
            "Admin: everything. Operator: reads all, writes metrics, acknowledges alerts, "
            "edits non-secret settings. Viewer: reads only, no secrets, no audit."
        )
        self.add_field("role", "Role", self.role)
        self.password = self.line_edit("password", "Password", password=True)
        self.password.setPlaceholderText(f"at least {MIN_PASSWORD} characters")
        self.confirm = self.line_edit("confirm", "Repeat password", password=True)
        first, second = _password_problems(self.password, self.confirm)
        self.check_field("password", self.password, first)
        self.check_field("confirm", self.confirm, second)
        self.set_ok_text("Create user")
        self.revalidate()
        self.username.setFocus()

    async def submit(self) -> None:
        problem = self.problem()
        if problem:
            raise InvalidInput(problem)
        self.created = await self._client.create_user(
            username=self.username.text(),
            password=self.password.text(),
            role=str(self.role.currentData()),
            display_name=self.display_name.text(),
        )


class EditUserDialog(CheckedForm):
    """Role and display name. One's own role is fixed: the backend refuses a self-demotion."""

    def __init__(
        self, client: Client, user: UserView, *, own: bool, parent: QWidget | None = None
    ) -> None:
        super().__init__(f"Edit {user.username}", "", parent)
        self._client = client
        self._user = user
        self.updated: UserView | None = None
        self._role_fixed = own
        name = QLabel(user.username, self)
        name.setObjectName("Muted")
        self.add_field("username", "Username", name)
        self.display_name = self.line_edit("display_name", "Display name", user.display_name)
        self.check_field(
            "display_name",
            self.display_name,
            lambda: backend_rule(check_display_name, self.display_name.text()),
        )
        self.role = role_combo(self, user.role)
        self.add_field("role", "Role", self.role)
        if own:
            self.role.setEnabled(False)
            self.role.setToolTip("You cannot change your own role; another admin can.")
        self.set_ok_text("Save")
        self.revalidate()
        self.display_name.setFocus()

    def _set_busy(self, busy: bool) -> None:
        super()._set_busy(busy)
        if self._role_fixed:
            self.role.setEnabled(False)  # stays fixed when the form comes back from busy

    async def submit(self) -> None:
        problem = self.problem()
        if problem:
            raise InvalidInput(problem)
        role = str(self.role.currentData())
        display_name = self.display_name.text().strip()
        self.updated = await self._client.update_user(
            self._user.id,
            role=role if role != self._user.role.value else None,
            display_name=display_name if display_name != self._user.display_name else None,
        )


class ResetPasswordDialog(CheckedForm):
    def __init__(self, client: Client, user: UserView, parent: QWidget | None = None) -> None:
        super().__init__(
            f"Reset the password of {user.username}",
            f"{user.username} is signed out everywhere and signs in with the new password.",
            parent,
        )
        self._client = client
        self._user = user
        self.password = self.line_edit("password", "New password", password=True)
        self.password.setPlaceholderText(f"at least {MIN_PASSWORD} characters")
        self.confirm = self.line_edit("confirm", "Repeat new password", password=True)
        first, second = _password_problems(self.password, self.confirm)
        self.check_field("password", self.password, first)
        self.check_field("confirm", self.confirm, second)
        self.set_ok_text("Reset password")
        self.revalidate()
        self.password.setFocus()

    async def submit(self) -> None:
        problem = self.problem()
        if problem:
            raise InvalidInput(problem)
        try:
            await self._client.reset_password(self._user.id, new=self.password.text())
        except InvalidInput as error:
            if error.details.get("field") in (None, "new_password"):
                error.details["field"] = "password"
            raise

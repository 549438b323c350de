"""The users table: one row per account, and the proxy that sorts and filters it.

Columns are declared once (`USER_COLUMNS`); the model is a
`RecordTableModel` keyed by user id, so reloads (after an event or one's
own action) keep the selection. The signed-in user's row is bold; disabled
accounts are greyed out.
"""

from __future__ import annotations

from PySide6.QtCore import QModelIndex, QObject, QPersistentModelIndex, QSortFilterProxyModel

from console.client.types import Role, UserView
from console.models.records import RECORD_ROLE, SORT_ROLE, Column, RecordTableModel, time_column

ROLE_TITLES: dict[Role, str] = {
    Role.ADMIN: "Admin",
    Role.OPERATOR: "Operator",
    Role.VIEWER: "Viewer",
}
ROLE_ORDER: dict[Role, int] = {Role.ADMIN: 0, Role.OPERATOR: 1, Role.VIEWER: 2}
"""Roles sort by power, not alphabetically."""


def status_text(user: UserView) -> str:
    return "Disabled" if user.disabled else "Enabled"


USER_COLUMNS: tuple[Column[UserView], ...] = (
    Column("Username", lambda user: user.username),
    Column("Display name", lambda user: user.display_name),
    Column(
        "Role",
        lambda user: ROLE_TITLES.get(user.role, user.role.value),
        sort_key=lambda user: ROLE_ORDER.get(user.role, len(ROLE_ORDER)),
    ),
    Column(
        "Status",
        status_text,
        sort_key=lambda user: int(user.disabled),
        tooltip=lambda user: (
            "Cannot sign in; their sessions and API keys stop working."
            if user.disabled
            else "Can sign in."
        ),
    ),
    time_column("Created", lambda user: user.created_at),
    time_column("Updated", lambda user: user.updated_at),
)

USERNAME, DISPLAY_NAME, ROLE, STATUS, CREATED, UPDATED = range(len(USER_COLUMNS))


class UsersModel(RecordTableModel[UserView]):
    def __init__(self, me_id: int | None, parent: QObject | None = None) -> None:
        super().__init__(
            USER_COLUMNS,
            key=lambda user: user.id,
            muted=lambda user: user.disabled,
            bold=lambda user: user.id == me_id,
            parent=parent,
        )


class UsersFilter(QSortFilterProxyModel):
    """Sort by any column's typed key; keep rows matching the text and the role chosen.

    The text matches anywhere in the username or display name, ignoring case.
    """

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._text = ""
        self._role: Role | None = None
        self.setSortRole(SORT_ROLE)
        self.setDynamicSortFilter(True)

    @property
    def text(self) -> str:
        return self._text

    @property
    def role(self) -> Role | None:
        return self._role

    def set_text(self, text: str) -> None:
        folded = text.strip().casefold()
        if folded != self._text:
            self.beginFilterChange()
            self._text = folded
            self.endFilterChange(QSortFilterProxyModel.Direction.Rows)

    def set_role(self, role: Role | None) -> None:
        if role != self._role:
            self.beginFilterChange()
            self._role = role
            self.endFilterChange(QSortFilterProxyModel.Direction.Rows)

    def user_at(self, index: QModelIndex | QPersistentModelIndex) -> UserView | None:
        """The user of a row of this proxy (any column), or None."""
        if not index.isValid():
            return None
        user = self.index(index.row(), 0).data(RECORD_ROLE)
        return user if isinstance(user, UserView) else None

    def filterAcceptsRow(
        self, source_row: int, source_parent: QModelIndex | QPersistentModelIndex
    ) -> bool:
        source = self.sourceModel()
        user = source.index(source_row, 0, source_parent).data(RECORD_ROLE)
        if not isinstance(user, UserView):
            return False
        if self._role is not None and user.role != self._role:
            return False
        if not self._text:
            return True
        return self._text in user.username.casefold() or self._text in user.display_name.casefold()

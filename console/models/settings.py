"""What the configuration panel is editing, and the tree that lists it.

`SettingsState` holds one `SettingField` per setting: the view its editor
was loaded from (whose version is the base of the next write), the
person's unsaved draft, why the draft cannot be saved, and a newer version
seen elsewhere while the draft was pending. Every change to a field goes
through the state, which emits `field_changed(key)`; the editors, the tree
and the panel's buttons only listen. So the rules of dirty, stale and
blocked live here once, not in the widgets.

`SettingsTreeModel` shows the categories with their settings beneath, with
the shown value and markers for unsaved and changed-elsewhere fields.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import (
    QAbstractItemModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    Qt,
    Signal,
)
from PySide6.QtGui import QFont

from console.client.types import SettingView
from console.models.settingspec import FieldSpec

Index = QModelIndex | QPersistentModelIndex


class _Unchanged:
    """The draft of a field the person has not edited."""

    def __repr__(self) -> str:
        return "UNCHANGED"


UNCHANGED: Any = _Unchanged()


@dataclass
class SettingField:
    spec: FieldSpec
    view: SettingView
    """What the editor was loaded from; `view.version` is the next write's `expected_version`."""
    draft: Any = UNCHANGED
    """The person's value, unsaved; `UNCHANGED` when they have not edited it."""
    problem: str | None = None
    """Why the draft cannot be saved (typed text that is no value, out of range…)."""
    elsewhere: SettingView | None = None
    """A newer version written elsewhere while the draft was pending; their change."""

    @property
    def key(self) -> str:
        return self.spec.key

    @property
    def dirty(self) -> bool:
        return self.problem is not None or self.draft is not UNCHANGED

    @property
    def shown(self) -> Any:
        """The value the editor shows: the draft when there is one."""
        return self.view.value if self.draft is UNCHANGED else self.draft

    @property
    def version(self) -> int:
        return self.view.version


class SettingsState(QObject):
    """Every setting's field; the one place their state changes (see the module doc)."""

    field_changed = Signal(str)
    """A field's view, draft, problem or `elsewhere` changed."""
    reset = Signal()
    """The set of settings itself was (re)loaded."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._fields: dict[str, SettingField] = {}

    # -- reading ------------------------------------------------------------------------

    def __contains__(self, key: object) -> bool:
        return key in self._fields

    def field(self, key: str) -> SettingField:
        return self._fields[key]

    def fields(self) -> list[SettingField]:
        return list(self._fields.values())

    def categories(self) -> list[str]:
        """Categories in the order the backend declares their first setting."""
        return list(dict.fromkeys(field.spec.category for field in self._fields.values()))

    def in_category(self, category: str) -> list[SettingField]:
        return [field for field in self._fields.values() if field.spec.category == category]

    def dirty(self) -> list[SettingField]:
        return [field for field in self._fields.values() if field.dirty]

    def blocked(self) -> list[SettingField]:
        """Dirty fields that cannot be saved as they are."""
        return [field for field in self._fields.values() if field.problem is not None]

    # -- changing -----------------------------------------------------------------------

    def load(self, views: list[SettingView]) -> None:
        """All settings, as listed; each known one is updated as by `update`, drafts kept."""
        if [view.key for view in views] == list(self._fields):
            for view in views:
                self.update(view)
            return
        previous, self._fields = self._fields, {}
        for view in views:
            field = previous.get(view.key)
            if field is None:
                field = SettingField(FieldSpec.of(view), view)
            else:
                self._absorb(field, view)
            self._fields[view.key] = field
        self.reset.emit()

    def update(self, view: SettingView) -> None:
        """A version read from the backend: shown at once unless a draft is pending.

        An older version than the one loaded (a late event) is ignored. While
        the person has a draft, a newer version is kept aside as `elsewhere`:
        their change is visible, the draft is not lost, and saving the draft
        will meet a conflict since it is still based on the old version.
        """
        field = self._fields.get(view.key)
        if field is None:
            return
        if self._absorb(field, view):
            self.field_changed.emit(view.key)

    def _absorb(self, field: SettingField, view: SettingView) -> bool:
        if view.version < field.view.version:
            return False
        if field.dirty:
            if view.version == field.view.version:
                return False
            field.elsewhere = view
            return True
        changed = view != field.view or field.elsewhere is not None
        field.view = view
        field.elsewhere = None
        return changed

    def edit(self, key: str, value: Any, problem: str | None = None) -> None:
        """The person changed an editor: `value`, or `problem` when it holds no valid value."""
        field = self._fields[key]
        if problem is None:
            problem = field.spec.problem(value)
        same = not field.spec.secret and value == field.view.value
        field.problem = problem
        field.draft = UNCHANGED if (problem is None and same) else value
        if not field.dirty and field.elsewhere is not None:
            # Back to the loaded value: nothing of theirs to protect any more.
            field.view, field.elsewhere = field.elsewhere, None
        self.field_changed.emit(key)

    def discard(self, key: str) -> None:
        """Drop the draft; the field shows the newest version known."""
        field = self._fields[key]
        field.draft = UNCHANGED
        field.problem = None
        if field.elsewhere is not None:
            field.view, field.elsewhere = field.elsewhere, None
        self.field_changed.emit(key)

    def saved(self, view: SettingView) -> None:
        """Our own write succeeded: `view` is the new base and the draft is gone."""
        field = self._fields[view.key]
        field.view = view
        field.draft = UNCHANGED
        field.problem = None
        field.elsewhere = None
        self.field_changed.emit(view.key)

    def rebase(self, view: SettingView) -> None:
        """Keep the draft but base it on `view` (the person chose to overwrite theirs)."""
        field = self._fields[view.key]
        field.view = view
        field.elsewhere = None
        self.field_changed.emit(view.key)


# -- the tree -----------------------------------------------------------------------------

KEY_ROLE = Qt.ItemDataRole.UserRole
"""A setting row's key; None on a category row."""
STATE_ROLE = Qt.ItemDataRole.UserRole + 1
"""'problem', 'elsewhere', 'dirty' or '' (what the markers show, for tests and delegates)."""
CATEGORY_ID = 0
HEADERS = ("Setting", "Value")


def field_state(field: SettingField) -> str:
    if field.problem is not None:
        return "problem"
    if field.elsewhere is not None:
        return "elsewhere"
    return "dirty" if field.dirty else ""


class SettingsTreeModel(QAbstractItemModel):
    """Categories, each with its settings: title and shown value (see the module doc).

    A category row's internal id is 0; a setting row's is its category's
    row + 1, which is all `parent()` needs.
    """

    def __init__(self, state: SettingsState, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._state = state
        self._categories: list[str] = []
        self._rows: dict[str, list[str]] = {}
        self._rebuild()
        state.reset.connect(self._reset)
        state.field_changed.connect(self._field_changed)

    def _rebuild(self) -> None:
        self._categories = self._state.categories()
        self._rows = {
            category: [field.key for field in self._state.in_category(category)]
            for category in self._categories
        }

    def _reset(self) -> None:
        self.beginResetModel()
        self._rebuild()
        self.endResetModel()

    def _field_changed(self, key: str) -> None:
        index = self.index_of(key)
        if not index.isValid():
            return
        self.dataChanged.emit(index, index.siblingAtColumn(len(HEADERS) - 1))
        category = index.parent()
        self.dataChanged.emit(category, category)

    # -- lookup -------------------------------------------------------------------------

    def index_of(self, key: str) -> QModelIndex:
        for row, category in enumerate(self._categories):
            keys = self._rows[category]
            if key in keys:
                return self.createIndex(keys.index(key), 0, row + 1)
        return QModelIndex()

    def category_index(self, category: str) -> QModelIndex:
        if category not in self._categories:
            return QModelIndex()
        return self.createIndex(self._categories.index(category), 0, CATEGORY_ID)

    def category_of(self, index: Index) -> str | None:
        if not index.isValid():
            return None
        if index.internalId() == CATEGORY_ID:
            return self._categories[index.row()]
        return self._categories[index.internalId() - 1]

    def key_of(self, index: Index) -> str | None:
        if not index.isValid() or index.internalId() == CATEGORY_ID:
            return None
        return self._rows[self._categories[index.internalId() - 1]][index.row()]

    # -- the model --------------------------------------------------------------------

    def index(self, row: int, column: int, parent: Index = QModelIndex()) -> QModelIndex:  # noqa: B008 - Qt's signature
        if not self.hasIndex(row, column, parent):
            return QModelIndex()
        if not parent.isValid():
            return self.createIndex(row, column, CATEGORY_ID)
        if parent.internalId() != CATEGORY_ID:
            return QModelIndex()
        return self.createIndex(row, column, parent.row() + 1)

    def parent(self, index: Index = QModelIndex()) -> QModelIndex:  # type: ignore[override]  # noqa: B008 - Qt's signature
        if not index.isValid() or index.internalId() == CATEGORY_ID:
            return QModelIndex()
        return self.createIndex(index.internalId() - 1, 0, CATEGORY_ID)

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008 - Qt's signature
        if not parent.isValid():
            return len(self._categories)
        if parent.column() != 0 or parent.internalId() != CATEGORY_ID:
            return 0
        return len(self._rows[self._categories[parent.row()]])

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008 - Qt's signature
        return len(HEADERS)

    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if (
            orientation == Qt.Orientation.Horizontal
            and role == Qt.ItemDataRole.DisplayRole
            and 0 <= section < len(HEADERS)
        ):
            return HEADERS[section]
        return None

    def flags(self, index: Index) -> Qt.ItemFlag:
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        return Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        key = self.key_of(index)
        if key is None:
            return self._category_data(index, role)
        field = self._state.field(key)
        if role == KEY_ROLE:
            return key
        if role == STATE_ROLE:
            return field_state(field)
        if role == Qt.ItemDataRole.DisplayRole:
            if index.column() == 0:
                return field.spec.title + (" •" if field.dirty else "")
            if field.problem is not None:
                return "(invalid)"
            return field.spec.format(
                field.shown, is_set=field.view.is_set, masked=field.view.masked
            )
        if role == Qt.ItemDataRole.ToolTipRole:
            return _tooltip(field)
        if role == Qt.ItemDataRole.FontRole and field.dirty:
            font = QFont()
            font.setItalic(True)
            return font
        return None

    def _category_data(self, index: Index, role: int) -> Any:
        category = self._categories[index.row()]
        if role == Qt.ItemDataRole.DisplayRole and index.column() == 0:
            unsaved = sum(self._state.field(key).dirty for key in self._rows[category])
            return f"{category} ({unsaved} unsaved)" if unsaved else category
        if role == Qt.ItemDataRole.FontRole and index.column() == 0:
            font = QFont()
            font.setBold(True)
            return font
        if role == STATE_ROLE:
            return ""
        return None


def _tooltip(field: SettingField) -> str:
    lines = [field.key, field.spec.description]
    if field.spec.restart_required:
        lines.append("Takes effect after a restart.")
    if field.problem is not None:
        lines.append(f"Not saved: {field.problem}.")
    elif field.elsewhere is not None:
        who = field.elsewhere.updated_by or "someone"
        lines.append(f"Changed elsewhere by {who} while you were editing.")
    elif field.dirty:
        lines.append("Edited, not saved yet.")
    return "\n".join(line for line in lines if line)

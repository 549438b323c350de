"""A panel's actions declared as data, with the permission each needs and why it is off.

Each `ActionSpec` names its text, tooltip, icon, the `Permission` it
requires (and the sentence shown when the role lacks it), and an optional
`blocked(context)` rule giving the reason it cannot apply to the current
context (nothing selected, one's own account…). `ActionSet` turns the specs
into `QAction`s for a toolbar and a context menu and, on every `update`,
enables each one or disables it with the reason as its tooltip, as the
design asks of every control. The rules are plain functions of the
context, so they are tested without a widget and the panel holds none.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from PySide6.QtCore import QObject, Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QMenu, QToolBar, QWidget

from console import theme
from console.client.types import MeView, Permission

C = TypeVar("C")


@dataclass(frozen=True, slots=True)
class ActionSpec(Generic[C]):
    key: str
    """Stable name: the QAction's objectName, used by tests."""
    text: str
    tip: str
    """Tooltip while the action is available."""
    requires: Permission | None = None
    denied: str = ""
    """Tooltip when the signed-in user lacks `requires`."""
    blocked: Callable[[C], str | None] | None = None
    """The reason the action does not apply to the context now; None when it does."""
    label: Callable[[C], str] | None = None
    """The text for the context, when it changes with it (Disable / Enable)."""
    icon: str | None = None
    shortcut: QKeySequence.StandardKey | str | None = None

    def reason(self, me: MeView, context: C) -> str | None:
        """Why the action is off for `me` in `context`; None when it is on."""
        if self.requires is not None and self.requires.value not in me.permissions:
            return self.denied or "Your role does not allow this."
        if self.blocked is not None:
            return self.blocked(context)
        return None


class ActionSet(QObject, Generic[C]):
    """The QActions of some specs, owned by `parent`, kept in step with `update`.

    A QObject child of `parent`, so its theme connection ends with the panel.
    """

    def __init__(self, specs: Sequence[ActionSpec[C]], parent: QWidget) -> None:
        super().__init__(parent)
        self._specs = tuple(specs)
        self._actions: dict[str, QAction] = {}
        for spec in self._specs:
            action = QAction(spec.text, parent)
            action.setObjectName(spec.key)
            action.setToolTip(spec.tip)
            if spec.shortcut is not None:
                action.setShortcut(QKeySequence(spec.shortcut))
                action.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
            self._actions[spec.key] = action
        self._draw_icons()
        manager = theme.manager()
        if manager is not None:
            manager.changed.connect(self._draw_icons)

    def __getitem__(self, key: str) -> QAction:
        return self._actions[key]

    def keys(self) -> list[str]:
        return [spec.key for spec in self._specs]

    def all(self) -> list[QAction]:
        """Every action, in declaration order (for `QWidget.addActions`, so shortcuts work)."""
        return [self._actions[spec.key] for spec in self._specs]

    def update(self, me: MeView, context: C) -> None:
        """Enable what `me` may do in `context`; disable the rest with the reason as tooltip."""
        for spec in self._specs:
            action = self._actions[spec.key]
            if spec.label is not None:
                action.setText(spec.label(context))
            reason = spec.reason(me, context)
            action.setEnabled(reason is None)
            action.setToolTip(spec.tip if reason is None else reason)

    def reason(self, key: str) -> str | None:
        """The current tooltip of a disabled action (its reason); None when enabled."""
        action = self._actions[key]
        return None if action.isEnabled() else action.toolTip()

    def fill_toolbar(self, toolbar: QToolBar, keys: Sequence[str] | None = None) -> None:
        for key in keys or self.keys():
            toolbar.addAction(self._actions[key])

    def menu(self, parent: QWidget, keys: Sequence[str] | None = None) -> QMenu:
        menu = QMenu(parent)
        menu.setToolTipsVisible(True)
        for key in keys or self.keys():
            menu.addAction(self._actions[key])
        return menu

    def _draw_icons(self, *_: object) -> None:
        for spec in self._specs:
            if spec.icon is not None:
                self._actions[spec.key].setIcon(theme.icon(spec.icon))

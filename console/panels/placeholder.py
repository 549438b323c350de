"""The page shown where a panel is not built yet, or failed to build."""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt
from PySide6.QtWidgets import QHBoxLayout, QLabel, QVBoxLayout, QWidget

from console import theme


class PlaceholderPanel(QWidget):
    """A centred icon, title and message. Holds no client: nothing to load, nothing to stop."""

    def __init__(
        self, title: str, message: str, icon: str = "placeholder", parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.setObjectName("PlaceholderPanel")
        self._icon_name = icon
        self._icon = QLabel(self)
        self._icon.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self._title = QLabel(title, self)
        self._title.setObjectName("PlaceholderTitle")
        self._title.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self._message = QLabel(message, self)
        self._message.setObjectName("Muted")
        self._message.setWordWrap(True)
        self._message.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self._message.setMinimumWidth(280)
        self._message.setMaximumWidth(480)
        self._message.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        # A word-wrapped label keeps its height-for-width only when the layout gives it its
        # width: centred between stretches, not by an alignment flag (which cuts it to a line).
        row = QHBoxLayout()
        row.addStretch(1)
        row.addWidget(self._message, 4)
        row.addStretch(1)
        layout = QVBoxLayout(self)
        layout.setSpacing(10)
        layout.addStretch(2)
        layout.addWidget(self._icon)
        layout.addWidget(self._title)
        layout.addLayout(row)
        layout.addStretch(3)
        self._draw_icon()
        manager = theme.manager()
        if manager is not None:
            manager.changed.connect(self._draw_icon)

    def message(self) -> str:
        return self._message.text()

    def _draw_icon(self, *_: object) -> None:
        self._icon.setPixmap(theme.icon(self._icon_name, muted=True).pixmap(QSize(56, 56)))

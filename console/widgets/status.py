"""The connection indicator of the top bar: live, reconnecting or offline, and the latency.

It only draws a `ConnectionStatus`; whoever owns the client feeds it
through `set_status` (the main window connects it to the client's status
listener by a signal).
"""

from __future__ import annotations

from PySide6.QtCore import QSize
from PySide6.QtWidgets import QHBoxLayout, QLabel, QWidget

from console import theme
from console.client.types import ConnectionState, ConnectionStatus

LABELS = {
    ConnectionState.LIVE: "Live",
    ConnectionState.RECONNECTING: "Reconnecting…",
    ConnectionState.OFFLINE: "Offline",
}
EXPLANATIONS = {
    ConnectionState.LIVE: "Connected: changes appear as they happen.",
    ConnectionState.RECONNECTING: "The connection dropped; retrying. What you see may be stale.",
    ConnectionState.OFFLINE: "Not connected: nothing is updated and nothing is retried.",
}


def format_latency(latency_ms: float | None) -> str:
    """'0.4 ms', '12 ms', '1.3 s': round trips span four orders of magnitude."""
    if latency_ms is None:
        return ""
    if latency_ms < 10:
        return f"{latency_ms:.1f} ms"
    if latency_ms < 1000:
        return f"{latency_ms:.0f} ms"
    return f"{latency_ms / 1000:.1f} s"


class ConnectionIndicator(QWidget):
    """A coloured dot, the state in words, and the round-trip time while live."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("ConnectionIndicator")
        self._dot = QLabel(self)
        self._dot.setFixedSize(QSize(12, 12))
        self._state_label = QLabel(self)
        self._state_label.setObjectName("ConnectionState")
        self._latency_label = QLabel(self)
        self._latency_label.setObjectName("Muted")
        self._latency_label.setToolTip("Round trip to the backend")
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(6)
        layout.addWidget(self._dot)
        layout.addWidget(self._state_label)
        layout.addWidget(self._latency_label)
        self._status = ConnectionStatus(ConnectionState.OFFLINE)
        self.set_status(self._status)

    @property
    def status(self) -> ConnectionStatus:
        return self._status

    def state_text(self) -> str:
        return self._state_label.text()

    def latency_text(self) -> str:
        return self._latency_label.text()

    def set_status(self, status: ConnectionStatus) -> None:
        self._status = status
        self._dot.setPixmap(theme.icon(f"status-{status.state.value}").pixmap(QSize(12, 12)))
        self._state_label.setText(LABELS[status.state])
        live = status.state is ConnectionState.LIVE
        self._latency_label.setText(format_latency(status.latency_ms) if live else "")
        self._latency_label.setVisible(live and status.latency_ms is not None)
        tip = EXPLANATIONS[status.state]
        if status.detail:
            tip = f"{tip}\n{status.detail}"
        self.setToolTip(tip)
        self._state_label.setAccessibleDescription(tip)

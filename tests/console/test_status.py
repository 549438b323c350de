"""The connection indicator draws every state."""

from __future__ import annotations

from PySide6.QtWidgets import QApplication

from console.client.types import ConnectionState, ConnectionStatus
from console.widgets.status import ConnectionIndicator, format_latency


def test_states_and_latency(app: QApplication) -> None:
    indicator = ConnectionIndicator()
    assert indicator.state_text() == "Offline"
    indicator.set_status(ConnectionStatus(ConnectionState.LIVE, latency_ms=12.4))
    assert indicator.state_text() == "Live"
    assert indicator.latency_text() == "12 ms"
    indicator.set_status(ConnectionStatus(ConnectionState.RECONNECTING, detail="refused"))
    assert indicator.state_text() == "Reconnecting…"
    assert indicator.latency_text() == ""
    assert "refused" in indicator.toolTip()
    indicator.deleteLater()


def test_latency_format() -> None:
    assert format_latency(None) == ""
    assert format_latency(0.42) == "0.4 ms"
    assert format_latency(87.0) == "87 ms"
    assert format_latency(1340.0) == "1.3 s"

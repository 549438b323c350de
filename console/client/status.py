"""The connection status a client reports, and the listeners it reports it to."""

from __future__ import annotations

import logging
from collections.abc import Callable

from console.client.protocol import StatusListener
from console.client.types import ConnectionState, ConnectionStatus

log = logging.getLogger(__name__)


class StatusBoard:
    """Holds the current status and tells every listener when it changes.

    Only ever touched on the caller's loop (the Qt loop in the app), so
    listeners may update widgets directly. A failing listener is logged and
    does not keep the others from hearing about the change.
    """

    def __init__(self) -> None:
        self._status = ConnectionStatus(ConnectionState.OFFLINE)
        self._listeners: list[StatusListener] = []

    @property
    def status(self) -> ConnectionStatus:
        return self._status

    def add(self, listener: StatusListener) -> Callable[[], None]:
        self._listeners.append(listener)

        def remove() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return remove

    def set(
        self, state: ConnectionState, *, latency_ms: float | None = None, detail: str = ""
    ) -> None:
        """Change the state; a latency of None keeps the last measured one."""
        if latency_ms is None:
            latency_ms = self._status.latency_ms
        status = ConnectionStatus(state, latency_ms, detail)
        if status == self._status:
            return
        self._status = status
        for listener in list(self._listeners):
            try:
                listener(status)
            except Exception:
                log.exception("a connection status listener failed")

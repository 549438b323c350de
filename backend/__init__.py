"""Quarterdeck's backend: one service core behind three front doors.

`Core` is loaded lazily so that `import backend.domain` (done by every
small tool, the agent and the CLI's argument parser) does not pull in
SQLAlchemy, Redis and every service.
"""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from backend.core import Core

__all__ = ["Core"]


def __getattr__(name: str) -> Any:
    if name == "Core":
        from backend.core import Core  # noqa: PLC0415

        return Core
    raise AttributeError(name)

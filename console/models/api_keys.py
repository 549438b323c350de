"""The signed-in user's API keys: one row per key; revoked keys stay listed, greyed out.

A key's secret is never here: the backend keeps only its hash, and the
prefix is what a person matches against the key an agent was given.
"""

from __future__ import annotations

from PySide6.QtCore import QObject, QSortFilterProxyModel

from console.client.types import ApiKeyView
from console.models.records import (
    SORT_ROLE,
    Column,
    RecordTableModel,
    format_time,
    full_time,
    time_column,
)


def scopes_text(key: ApiKeyView) -> str:
    return ", ".join(key.scopes)


API_KEY_COLUMNS: tuple[Column[ApiKeyView], ...] = (
    Column("Name", lambda key: key.name),
    Column(
        "Prefix",
        lambda key: key.prefix,
        tooltip=lambda key: "The start of the key, to recognise it; the rest is never shown again.",
    ),
    Column("Scopes", scopes_text, tooltip=lambda key: "\n".join(key.scopes)),
    time_column("Created", lambda key: key.created_at),
    Column(
        "Last used",
        lambda key: "Never" if key.last_used_at is None else format_time(key.last_used_at),
        sort_key=lambda key: -1.0 if key.last_used_at is None else key.last_used_at,
        tooltip=lambda key: (
            f"{full_time(key.last_used_at)} (recorded at most once a minute)"
            if key.last_used_at is not None
            else "Never used."
        ),
    ),
    Column(
        "Revoked",
        lambda key: format_time(key.revoked_at),
        sort_key=lambda key: -1.0 if key.revoked_at is None else key.revoked_at,
        tooltip=lambda key: (
            f"Revoked {full_time(key.revoked_at)}: it no longer authenticates."
            if key.revoked_at is not None
            else "Active."
        ),
    ),
)

NAME, PREFIX, SCOPES, CREATED, LAST_USED, REVOKED = range(len(API_KEY_COLUMNS))


class ApiKeysModel(RecordTableModel[ApiKeyView]):
    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(
            API_KEY_COLUMNS,
            key=lambda key: key.id,
            muted=lambda key: key.revoked_at is not None,
            parent=parent,
        )


class ApiKeysSorter(QSortFilterProxyModel):
    """Sorts the keys by each column's typed key (times as times)."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.setSortRole(SORT_ROLE)
        self.setDynamicSortFilter(True)

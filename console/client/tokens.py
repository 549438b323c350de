"""The signed-in session's tokens and when to refresh them, for both clients."""

from __future__ import annotations

import time
from dataclasses import dataclass

from backend.domain.users import TokenPair

REFRESH_MARGIN = 60.0
"""Seconds before expiry at which the access token is renewed..."""
REFRESH_FRACTION = 0.2
"""...or this fraction of its lifetime, when that is shorter (short-lived test tokens)."""


@dataclass(frozen=True, slots=True)
class Tokens:
    access: str
    refresh: str
    renew_at: float
    """`time.monotonic()` after which the access token is renewed before use."""

    @classmethod
    def issued(cls, pair: TokenPair, *, now: float | None = None) -> Tokens:
        """Renewed shortly before expiry, so a call never goes out with a dying token."""
        start = time.monotonic() if now is None else now
        margin = min(REFRESH_MARGIN, pair.expires_in * REFRESH_FRACTION)
        return cls(pair.access_token, pair.refresh_token, start + pair.expires_in - margin)

    def due(self) -> bool:
        return time.monotonic() >= self.renew_at

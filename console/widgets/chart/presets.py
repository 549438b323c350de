"""The time ranges offered as buttons, from a live view to a month."""

from __future__ import annotations

from enum import Enum


class RangePreset(Enum):
    """A window ending at now; `value` is its length in seconds."""

    M5 = 300
    M15 = 900
    H1 = 3_600
    H6 = 21_600
    H24 = 86_400
    D7 = 604_800
    D30 = 2_592_000

    @property
    def seconds(self) -> float:
        return float(self.value)

    @property
    def label(self) -> str:
        return _LABELS[self]


_LABELS = {
    RangePreset.M5: "5 min",
    RangePreset.M15: "15 min",
    RangePreset.H1: "1 h",
    RangePreset.H6: "6 h",
    RangePreset.H24: "24 h",
    RangePreset.D7: "7 d",
    RangePreset.D30: "30 d",
}

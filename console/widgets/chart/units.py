"""How a metric's values read on an axis, in a crosshair label and in a CSV.

The chart is given a `ValueFormat` rather than a `MetricSpec` so that
`console.widgets` never imports the backend; `ValueFormat.of(spec)` accepts
anything shaped like a `MetricSpec` (`METRICS` stays the single declaration).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

_SCALED_UNITS = frozenset({"B", "B/s"})
"""Units shown with decimal prefixes (kB, MB, ...): round ticks stay round."""
_PREFIXES = ("", "k", "M", "G", "T", "P")


class MetricLike(Protocol):
    """The part of `backend.domain.metrics.MetricSpec` a chart needs."""

    @property
    def name(self) -> str: ...
    @property
    def unit(self) -> str: ...
    @property
    def precision(self) -> int: ...


@dataclass(frozen=True, slots=True)
class ValueFormat:
    """Unit, decimals and axis title of the values on one chart."""

    unit: str = ""
    precision: int = 2
    title: str = ""

    @classmethod
    def of(cls, metric: MetricLike, title: str | None = None) -> ValueFormat:
        return cls(metric.unit, metric.precision, metric.name if title is None else title)

    @property
    def fixed_range(self) -> tuple[float, float] | None:
        """Percentages keep 0-100 so that 3 % never fills the plot like 100 % would."""
        return (0.0, 100.0) if self.unit == "%" else None

    def format(self, value: float) -> str:
        """One value for a person: `12.3 %`, `1.52 MB/s`, `0.75`."""
        if math.isnan(value):
            return "-"
        if self.unit in _SCALED_UNITS:
            return _scaled(value, self.unit, self.precision)
        text = f"{value:.{self.precision}f}"
        return f"{text} {self.unit}" if self.unit else text

    def format_tick(self, value: float, spacing: float) -> str:
        """An axis tick: only as many decimals as the tick spacing needs."""
        if self.unit in _SCALED_UNITS:
            exponent = _exponent(max(abs(value), spacing))
            scale = 1000.0**exponent
            decimals = _decimals_for(spacing / scale)
            return f"{value / scale:.{decimals}f} {_PREFIXES[exponent]}{self.unit}"
        decimals = min(_decimals_for(spacing), max(self.precision, 0))
        text = f"{value:.{decimals}f}"
        return f"{text} {self.unit}" if self.unit else text

    def format_csv(self, value: float) -> str:
        """A CSV cell: the metric's precision, no unit, empty when missing."""
        return "" if math.isnan(value) else f"{value:.{self.precision}f}"


def _exponent(magnitude: float) -> int:
    if magnitude < 1000.0:
        return 0
    return min(int(math.log10(magnitude) // 3), len(_PREFIXES) - 1)


def _decimals_for(spacing: float) -> int:
    """Decimals that tell ticks `spacing` apart (0 for 1, 1 for 0.5, 2 for 0.05)."""
    if spacing <= 0 or not math.isfinite(spacing):
        return 0
    return max(0, -math.floor(math.log10(spacing) + 1e-9))


def _scaled(value: float, unit: str, precision: int) -> str:
    exponent = _exponent(abs(value))
    if exponent == 0:
        return f"{value:.{precision}f} {unit}"
    scaled = value / 1000.0**exponent
    # Three significant digits once prefixed: 1.52 MB, 15.2 MB, 152 MB.
    decimals = max(0, 2 - int(math.log10(abs(scaled))))
    return f"{scaled:.{decimals}f} {_PREFIXES[exponent]}{unit}"

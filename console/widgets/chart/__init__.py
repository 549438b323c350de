"""The live time-series chart: avg lines over min/max bands, presets, crosshair, export."""

from console.widgets.chart.presets import RangePreset
from console.widgets.chart.series import BucketLike
from console.widgets.chart.theme import ChartTheme
from console.widgets.chart.units import MetricLike, ValueFormat
from console.widgets.chart.widget import LiveChart

__all__ = ["BucketLike", "ChartTheme", "LiveChart", "MetricLike", "RangePreset", "ValueFormat"]

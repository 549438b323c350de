"""What the metrics and hosts services accept and hand back, and how a range is read.

Times are epoch seconds (UTC) as floats everywhere, on the wire and in
storage, so no layer converts time zones or formats.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Annotated, Any, Literal, NotRequired, cast

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    with_config,
)
from typing_extensions import TypedDict

from backend.domain.metrics import METRICS

MAX_HOST_LENGTH = 255
MAX_METRIC_LENGTH = 200
MAX_LABELS = 16
MAX_LABEL_KEY_LENGTH = 64
MAX_LABEL_VALUE_LENGTH = 200
MAX_LABELS_JSON = 500
"""The `metric_series.labels` column width, for the canonical JSON text."""
MAX_TS = 1e10
"""Year 2286: keeps bucket arithmetic exact in 64-bit integers and doubles."""
MAX_ABS_VALUE = 1e18
"""Sums of an hour of such values stay far from float overflow, which PostgreSQL
reports as an error rather than infinity."""

MAX_BATCH = 50_000
"""Points per ingest call: one transaction should stay well under a second."""
MAX_QUERY_SERIES = 64
MAX_POINTS = 10_000

RAW = 0
ROLLUP_RESOLUTIONS = (60, 600, 3600)
"""Seconds per rollup bucket, finest first. Each divides the next, so coarser
buckets are built from finer ones and a query's buckets nest exactly."""

HostStatus = Literal["up", "down"]


def canonical_labels(labels: dict[str, str]) -> str:
    """One text per label set, so equal sets find the same series row."""
    return json.dumps(labels, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _known_metric(name: str) -> str:
    if name not in METRICS:
        raise ValueError(f"unknown metric {name!r}")
    return name


def _bounded_labels(labels: dict[str, str]) -> dict[str, str]:
    if not labels:
        return labels
    if len(labels) > MAX_LABELS:
        raise ValueError(f"at most {MAX_LABELS} labels")
    for key, value in labels.items():
        if not 0 < len(key) <= MAX_LABEL_KEY_LENGTH:
            raise ValueError(f"a label name is 1 to {MAX_LABEL_KEY_LENGTH} characters")
        if len(value) > MAX_LABEL_VALUE_LENGTH:
            raise ValueError(f"a label value is at most {MAX_LABEL_VALUE_LENGTH} characters")
    if len(canonical_labels(labels)) > MAX_LABELS_JSON:
        raise ValueError(f"labels take at most {MAX_LABELS_JSON} characters as JSON")
    return labels


HostName = Annotated[str, Field(min_length=1, max_length=MAX_HOST_LENGTH, pattern=r"\S")]
MetricName = Annotated[
    str, Field(min_length=1, max_length=MAX_METRIC_LENGTH), AfterValidator(_known_metric)
]
Labels = Annotated[dict[str, str], AfterValidator(_bounded_labels)]
Timestamp = Annotated[float, Field(ge=0, lt=MAX_TS, allow_inf_nan=False)]
Value = Annotated[float, Field(ge=-MAX_ABS_VALUE, le=MAX_ABS_VALUE, allow_inf_nan=False)]
"""A point's fields, as `PointIn` declares them; `check_points` reuses them."""


class PointIn(BaseModel):
    """One sample as pushed by an agent or the local collector.

    Validated once, where it enters (the API body, the collector); ingest
    trusts a `PointIn` and validates only plain mappings (`check_points`,
    which accepts and refuses exactly what this model does). A metric must be
    declared in `METRICS`, so a typo cannot start a series nobody charts.
    """

    model_config = ConfigDict(frozen=True)

    host: HostName
    metric: MetricName
    labels: Labels = Field(default_factory=dict)
    ts: Timestamp
    value: Value


class PointFields(TypedDict):
    """A point as ingest handles it: `PointIn`'s fields in a plain dict."""

    host: str
    metric: str
    labels: dict[str, str]
    ts: float
    value: float


class CheckedPoints(list[PointFields]):
    """A batch `check_points` accepted: ingest takes it as it is, like `PointIn`s."""


class _LoosePoint(TypedDict):
    """`PointIn` less its per-value Python checks (host pattern, metric, labels).

    Those three depend on one field's value alone, and a batch repeats a few
    hosts, metrics and label sets over and over, so `check_points` runs them
    once per distinct value instead of once per point.
    """

    host: str
    metric: str
    labels: NotRequired[Annotated[dict[str, str], Field(default_factory=dict)]]
    ts: Timestamp
    value: Value


@with_config(ConfigDict(extra="forbid"))
class _ClosedLoosePoint(_LoosePoint):
    """`_LoosePoint` for models that refuse unknown fields."""


_LOOSE = TypeAdapter(list[_LoosePoint])
_CLOSED_LOOSE = TypeAdapter(list[_ClosedLoosePoint])
_HOST: TypeAdapter[str] = TypeAdapter(HostName)
_METRIC: TypeAdapter[str] = TypeAdapter(MetricName)
_LABELS: TypeAdapter[dict[str, str]] = TypeAdapter(Labels)


@functools.cache
def _strict(model: type[PointIn]) -> TypeAdapter[list[PointIn]]:
    return TypeAdapter(list[model])  # type: ignore[valid-type]  # a PointIn subclass


def check_points(raw: Sequence[Any], model: type[PointIn] = PointIn) -> CheckedPoints:
    """Validate a batch of mappings exactly as `list[model]` would, several times faster.

    `model` is `PointIn` or a subclass that only changes how unknown fields
    are treated (the API's body type refuses them). The batch goes through
    one `TypeAdapter` over a TypedDict (no model instance per point), which
    applies every constraint of `PointIn` but the three per-value checks;
    those then run once per distinct host, metric and label set, with
    `PointIn`'s own annotated types. Each field is coerced the same way in
    both schemas and the per-value checks return their input unchanged, so
    when this path passes, the model would have accepted the batch with the
    same values. Whenever it does not pass, the batch is validated as
    `list[model]` after all: the errors raised (a `ValidationError`) are
    exactly that model's.
    """
    closed = model.model_config.get("extra") == "forbid"
    try:
        points = (_CLOSED_LOOSE if closed else _LOOSE).validate_python(raw)
        for host in set(map(itemgetter("host"), points)):
            _HOST.validate_python(host)
        for metric in set(map(itemgetter("metric"), points)):
            _METRIC.validate_python(metric)
        labelled = filter(None, map(itemgetter("labels"), points))
        for pairs in set(map(tuple, map(dict.items, labelled))):
            _LABELS.validate_python(dict(pairs))
    except ValidationError:
        return CheckedPoints(
            cast("PointFields", vars(point)) for point in _strict(model).validate_python(raw)
        )
    return CheckedPoints(cast("list[PointFields]", points))


class IngestResult(BaseModel):
    accepted: int
    series: int
    """Distinct series the batch touched."""


class SeriesView(BaseModel):
    id: int
    host: str
    metric: str
    labels: dict[str, str]


class Bucket(BaseModel):
    """Aggregates of one time slice: min and max keep spikes visible when zoomed out."""

    ts: float
    """Start of the slice."""
    min: float
    max: float
    avg: float
    count: int


class SeriesData(BaseModel):
    series_id: int
    resolution: int
    """Seconds per stored bucket that was read; 0 for raw points."""
    bucket_seconds: float
    """Width of each returned bucket."""
    buckets: list[Bucket]
    """Oldest first; empty slices are left out."""


class HostView(BaseModel):
    """Frozen: the hosts service hands the same views to every listing until one changes."""

    model_config = ConfigDict(frozen=True)

    id: int
    name: str
    status: HostStatus
    first_seen: float
    last_seen: float


@dataclass(frozen=True, slots=True)
class Retention:
    """How long each resolution is kept, from the `retention.*` settings."""

    raw_hours: float
    days_1m: float
    days_10m: float
    days_1h: float

    def cutoffs(self, now: float) -> dict[int, float]:
        """Per resolution, the time before which its data is dropped."""
        day = 86_400.0
        return {
            RAW: now - self.raw_hours * 3600.0,
            60: now - self.days_1m * day,
            600: now - self.days_10m * day,
            3600: now - self.days_1h * day,
        }


@dataclass(frozen=True, slots=True)
class QueryPlan:
    """Where a range query reads and how it slices the range into buckets.

    For rollups every quantity is an integer number of seconds, so bucket
    indexes are exact integer divisions; for raw points they follow the
    float formula `floor((ts - t0) / bucket_seconds)`.
    """

    resolution: int
    t0: float
    t1: float
    bucket_seconds: float
    max_points: int


def plan_query(
    start: float, end: float, max_points: int, *, now: float, retention: Retention
) -> QueryPlan:
    """The coarsest resolution that still gives each bucket one stored slice or more.

    Reading the coarsest level that fits keeps the rows read near
    `max_points` whatever the range; a level whose retention no longer
    covers `start` is skipped for the next coarser one, so an old range
    does not come back empty while coarser data for it still exists.
    """
    width = (end - start) / max_points
    resolution = RAW
    for candidate in ROLLUP_RESOLUTIONS:
        if candidate <= width:
            resolution = candidate
    cutoffs = retention.cutoffs(now)
    for level, coarser in zip((RAW, *ROLLUP_RESOLUTIONS), ROLLUP_RESOLUTIONS, strict=False):
        if resolution == level and start < cutoffs[level]:
            resolution = coarser
    if resolution == RAW:
        return QueryPlan(RAW, start, end, width, max_points)
    t0 = math.floor(start / resolution) * resolution
    t1 = math.ceil(end / resolution) * resolution
    slots = (t1 - t0) // resolution
    bucket_seconds = -(-slots // max_points) * resolution
    return QueryPlan(resolution, t0, t1, bucket_seconds, max_points)

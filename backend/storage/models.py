"""The schema, as SQLAlchemy 2 typed tables.

Times are epoch seconds (UTC) stored as floats everywhere, matching the wire
format, so no layer converts time zones. Metric points and rollups are plain
tables, not ORM classes: the hot path writes them with COPY / executemany.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(200), default="")
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[float] = mapped_column(Float)


class RefreshToken(Base):
    __tablename__ = "refresh_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    family_id: Mapped[str] = mapped_column(String(64), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[float] = mapped_column(Float)
    expires_at: Mapped[float] = mapped_column(Float)
    used_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    revoked_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    source: Mapped[str] = mapped_column(String(100), default="")


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    prefix: Mapped[str] = mapped_column(String(32), unique=True)
    secret_hash: Mapped[str] = mapped_column(String(64))
    scopes: Mapped[str] = mapped_column(Text)
    """JSON list of permission names."""
    created_at: Mapped[float] = mapped_column(Float)
    last_used_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    revoked_at: Mapped[float | None] = mapped_column(Float, nullable=True)


class SettingVersion(Base):
    """Every value a setting ever had; the highest version is the current one.

    The unique (key, version) pair is what turns two concurrent writers based
    on the same version into one winner and one conflict.
    """

    __tablename__ = "setting_versions"
    __table_args__ = (UniqueConstraint("key", "version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(100), index=True)
    version: Mapped[int] = mapped_column(Integer)
    value: Mapped[str] = mapped_column(Text)
    """JSON text, or a Fernet token of the JSON text for secret settings."""
    encrypted: Mapped[bool] = mapped_column(Boolean, default=False)
    actor: Mapped[str] = mapped_column(String(100))
    reason: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[float] = mapped_column(Float)


class AuditEntry(Base):
    """Append-only; `hash` covers the entry and `prev_hash`, chaining the log."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_ts", "ts"), Index("ix_audit_log_actor", "actor"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ts: Mapped[float] = mapped_column(Float)
    actor: Mapped[str] = mapped_column(String(100))
    actor_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    action: Mapped[str] = mapped_column(String(64), index=True)
    target: Mapped[str] = mapped_column(String(200), default="")
    details: Mapped[str] = mapped_column(Text, default="{}")
    source: Mapped[str] = mapped_column(String(100), default="local")
    correlation_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class Host(Base):
    __tablename__ = "hosts"
    # Never reuse a deleted host's id: another process may still cache it.
    __table_args__ = ({"sqlite_autoincrement": True},)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    first_seen: Mapped[float] = mapped_column(Float)
    last_seen: Mapped[float] = mapped_column(Float)
    info: Mapped[str] = mapped_column(Text, default="{}")


class MetricSeries(Base):
    __tablename__ = "metric_series"
    __table_args__ = (
        UniqueConstraint("host_id", "metric", "labels"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    host_id: Mapped[int] = mapped_column(ForeignKey("hosts.id", ondelete="CASCADE"), index=True)
    metric: Mapped[str] = mapped_column(String(200), index=True)
    labels: Mapped[str] = mapped_column(String(500), default="{}")
    """Canonical JSON (sorted keys), so equal label sets compare equal."""


metric_points = Table(
    "metric_points",
    Base.metadata,
    Column("series_id", Integer, nullable=False),
    Column("ts", Float, nullable=False),
    Column("value", Float, nullable=False),
    Index("ix_metric_points_series_ts", "series_id", "ts"),
)
"""Raw samples. No foreign key and no unique key: the hot path stays a bare append."""

metric_rollups = Table(
    "metric_rollups",
    Base.metadata,
    Column("series_id", Integer, primary_key=True),
    Column("resolution", Integer, primary_key=True),
    Column("bucket", BigInteger, primary_key=True),
    Column("min", Float, nullable=False),
    Column("max", Float, nullable=False),
    Column("sum", Float, nullable=False),
    Column("count", BigInteger, nullable=False),
    sqlite_with_rowid=False,
    # Room in each page for the upsert's new row version (HOT updates).
    postgresql_with={"fillfactor": 70},
)
"""Per-bucket aggregates at each rollup resolution (seconds), kept up to date on ingest."""

"""Start-up configuration: where data lives and which servers to use.

These are the few values needed *before* the database can be opened
(its URL, the secret key, Redis). Everything an operator tunes at run time
lives in the versioned settings registry (`backend.services.settings_registry`)
instead, so it is audited and shared by every server instance.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

import platformdirs
from pydantic import Field, SecretStr, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

APP_NAME = "quarterdeck"
SECRET_KEY_FILE = "secret.key"


def default_data_dir() -> Path:
    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))


def _config_file() -> Path | None:
    """The TOML file named by QUARTERDECK_CONFIG, if any.

    Read at construction time rather than import time so tests and the
    console can open several differently configured cores in one process.
    """
    name = os.environ.get("QUARTERDECK_CONFIG")
    return Path(name) if name else None


class Settings(BaseSettings):
    """Start-up settings, from arguments, then QUARTERDECK_* variables, then TOML."""

    model_config = SettingsConfigDict(env_prefix="QUARTERDECK_", extra="forbid")

    data_dir: Path = Field(default_factory=default_data_dir)
    database_url: str | None = None
    """SQLAlchemy URL; None means SQLite in `data_dir`."""
    redis_url: str | None = None
    """Redis URL; None means the in-memory bus, cache and rate limiter."""
    redis_prefix: str = "quarterdeck:"
    """Namespace for every Redis key, so deployments (and tests) can share a server."""
    secret_key: SecretStr | None = None
    """Signs tokens and encrypts secret settings. None: a key file in data_dir."""
    auto_migrate: bool | None = None
    """Upgrade the schema on open. None: yes for SQLite (the embedded mode), no
    for PostgreSQL, where an operator runs `quarterdeck db upgrade` once for
    all server instances."""
    collect_local: bool = False
    """Sample this machine with psutil while the core runs (embedded mode)."""
    run_jobs: bool = True
    """Run the deployment's periodic jobs (retention, host status) in this process.

    Safe on every server instance: retention takes a PostgreSQL advisory lock."""
    live_events: bool = True
    """Publish coalesced `metrics` events once a second for what this process ingested."""
    local_host_name: str | None = None
    """Name the local collector reports under; None means the machine's host name."""
    event_retention: int = Field(default=10_000, ge=100)
    """How many events the bus keeps for clients that resume."""

    @field_validator("database_url")
    @classmethod
    def _psycopg_driver(cls, value: str | None) -> str | None:
        """Accept plain `postgresql://` URLs and pick the async psycopg 3 driver."""
        if value is None:
            return None
        for prefix in ("postgresql://", "postgres://"):
            if value.startswith(prefix):
                return "postgresql+psycopg://" + value[len(prefix) :]
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        path = _config_file()
        if path is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
        return tuple(sources)

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{self.data_dir / 'quarterdeck.db'}"

    @property
    def migrate_on_open(self) -> bool:
        return self.is_sqlite if self.auto_migrate is None else self.auto_migrate

    @property
    def is_sqlite(self) -> bool:
        return self.effective_database_url.startswith("sqlite")

    def resolve_secret_key(self) -> bytes:
        """The configured key, or one kept in a private file in the data directory.

        A server deployment with several instances must configure the same key
        on each; the embedded mode keeps one per user without any setup.
        """
        if self.secret_key is not None:
            return self.secret_key.get_secret_value().encode()
        path = self.data_dir / SECRET_KEY_FILE
        if path.exists():
            return path.read_bytes().strip()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        key = secrets.token_urlsafe(48).encode()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(key)
        return key

    def public_summary(self) -> dict[str, Any]:
        """What `quarterdeck` may print about its configuration (no secrets)."""
        return {
            "data_dir": str(self.data_dir),
            "database": "sqlite" if self.is_sqlite else "postgresql",
            "bus": "redis" if self.redis_url else "memory",
        }

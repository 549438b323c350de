"""Start-up configuration: defaults, environment, TOML file, secret key file."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from pydantic import ValidationError

from backend.config import Settings


def test_defaults_are_embedded(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("QUARTERDECK_DATA_DIR", str(tmp_path))
    settings = Settings()
    assert settings.effective_database_url == f"sqlite+aiosqlite:///{tmp_path / 'quarterdeck.db'}"
    assert settings.redis_url is None
    assert settings.migrate_on_open


def test_postgres_url_gets_async_driver_and_no_implicit_migration() -> None:
    settings = Settings(database_url="postgresql://u@db/qd")
    assert settings.effective_database_url == "postgresql+psycopg://u@db/qd"
    assert not settings.migrate_on_open


def test_toml_file_below_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    config = tmp_path / "quarterdeck.toml"
    config.write_text(
        'database_url = "postgresql://from-file/qd"\nredis_url = "redis://from-file:6379/0"\n'
    )
    monkeypatch.setenv("QUARTERDECK_CONFIG", str(config))
    monkeypatch.setenv("QUARTERDECK_REDIS_URL", "redis://from-env:6379/1")
    settings = Settings()
    assert settings.database_url == "postgresql+psycopg://from-file/qd"
    assert settings.redis_url == "redis://from-env:6379/1"


def test_unknown_key_in_file_is_an_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    config = tmp_path / "quarterdeck.toml"
    config.write_text('databse_url = "typo"\n')
    monkeypatch.setenv("QUARTERDECK_CONFIG", str(config))
    with pytest.raises(ValidationError, match="databse_url"):
        Settings()


def test_secret_key_file_is_created_once_and_private(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    key = settings.resolve_secret_key()
    assert len(key) >= 32
    assert settings.resolve_secret_key() == key
    mode = stat.S_IMODE((tmp_path / "data" / "secret.key").stat().st_mode)
    assert mode == 0o600
    assert Settings(data_dir=tmp_path / "data", secret_key="explicit").resolve_secret_key() == (
        b"explicit"
    )

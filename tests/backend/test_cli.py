"""The `quarterdeck` command line, run in-process against SQLite and PostgreSQL + Redis.

The CLI runs its own event loop, so these tests are plain synchronous ones.
"""

from __future__ import annotations

import io
import json
import os
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import text

from backend import cli
from backend.config import Settings
from backend.core import Core
from backend.storage.database import Database
from backend.storage.migrate import head_revision
from tests.backend.conftest import PASSWORD, TEST_SECRET, Backend
from tests.services import postgres_admin_url

KEY = "hosts.down_after_missed"


def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("QUARTERDECK_") and not name.startswith("QUARTERDECK_TEST_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("QUARTERDECK_SECRET_KEY", TEST_SECRET)


@pytest.fixture
def env(backend: Backend, monkeypatch: pytest.MonkeyPatch) -> Backend:
    """Point the CLI at the test's storage through QUARTERDECK_* variables only."""
    _clean_environment(monkeypatch)
    settings = backend.settings
    monkeypatch.setenv("QUARTERDECK_DATA_DIR", str(settings.data_dir))
    if settings.database_url:
        monkeypatch.setenv("QUARTERDECK_DATABASE_URL", settings.database_url)
    if settings.redis_url:
        monkeypatch.setenv("QUARTERDECK_REDIS_URL", settings.redis_url)
        monkeypatch.setenv("QUARTERDECK_REDIS_PREFIX", settings.redis_prefix)
    return backend


def run(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    code = cli.main(list(argv), out)
    return code, out.getvalue()


def error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err  # one clear line, no traceback
    assert err.startswith("quarterdeck: ")
    return err


def sql(settings: Settings, statement: str, **params: Any) -> list[Any]:
    """Run SQL on the CLI's database directly (to look behind its back or to tamper)."""

    async def main() -> list[Any]:
        db = Database(settings.effective_database_url)
        try:
            async with db.engine.begin() as conn:
                result = await conn.execute(text(statement), params)
                return list(result.all()) if result.returns_rows else []
        finally:
            await db.dispose()

    return cli.run_async(main())


def exported(capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    code, out = run("settings", "export")
    assert code == 0, capsys.readouterr().err
    values: dict[str, Any] = json.loads(out)["settings"]
    return values


def create_user(monkeypatch: pytest.MonkeyPatch, username: str, role: str, stdin: str) -> int:
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    code, _ = run("user", "create", "--username", username, "--role", role)
    return code


# -- start-up --------------------------------------------------------------------


def test_no_command_lists_the_commands(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # `quarterdeck` alone opens the console (console.launcher, tests/console/test_launcher.py);
    # the backend's own entry point without a command shows what it can do.
    _clean_environment(monkeypatch)
    monkeypatch.setenv("QUARTERDECK_DATA_DIR", str(tmp_path))
    code, out = run()
    assert code == 2
    assert "opens the desktop console" in " ".join(out.split())
    for command in ("db", "user", "audit", "settings", "serve", "agent"):
        assert command in out


def test_bad_configuration_is_one_clear_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _clean_environment(monkeypatch)
    monkeypatch.setenv("QUARTERDECK_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("QUARTERDECK_EVENT_RETENTION", "5")
    assert run("audit", "verify") == (1, "")
    assert "bad configuration" in capsys.readouterr().err


def test_usage_errors_exit_with_2(env: Backend, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        run("user", "create", "--username", "nobody")
    assert caught.value.code == 2
    assert "--role" in capsys.readouterr().err


def test_unreachable_servers_are_one_clear_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _clean_environment(monkeypatch)
    monkeypatch.setenv("QUARTERDECK_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("QUARTERDECK_DATABASE_URL", "postgresql://postgres@127.0.0.1:1/nowhere")
    assert run("db", "upgrade") == (1, "")
    assert "cannot use the database: connection failed" in error_line(capsys)
    assert run("audit", "verify") == (1, "")
    assert "cannot use the database" in error_line(capsys)

    monkeypatch.delenv("QUARTERDECK_DATABASE_URL")
    monkeypatch.setenv("QUARTERDECK_REDIS_URL", "redis://127.0.0.1:1/0")
    assert run("audit", "verify") == (1, "")
    assert "cannot reach Redis" in error_line(capsys)


# -- db upgrade ------------------------------------------------------------------


def test_db_upgrade_on_a_fresh_sqlite_data_dir(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _clean_environment(monkeypatch)
    data_dir = tmp_path / "not" / "there" / "yet"
    monkeypatch.setenv("QUARTERDECK_DATA_DIR", str(data_dir))

    assert run("db", "upgrade") == (
        0,
        f"upgraded the database schema from empty to {head_revision()}\n",
    )
    assert (data_dir / "quarterdeck.db").is_file()
    assert run("db", "upgrade") == (
        0,
        f"the database schema is up to date (revision {head_revision()})\n",
    )
    assert run("audit", "verify") == (0, "audit log intact: 0 entries verified\n")


@pytest.fixture
def fresh_postgres() -> Iterator[str]:
    admin = postgres_admin_url()
    name = f"qd_cli_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield admin.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_db_upgrade_on_a_fresh_postgres_database(
    fresh_postgres: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _clean_environment(monkeypatch)
    monkeypatch.setenv("QUARTERDECK_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("QUARTERDECK_DATABASE_URL", fresh_postgres)

    # The server does not migrate on its own: it says what to run.
    assert run("audit", "verify") == (1, "")
    assert "quarterdeck db upgrade" in error_line(capsys)

    code, out = run("db", "upgrade")
    assert (code, out) == (0, f"upgraded the database schema from empty to {head_revision()}\n")
    assert run("audit", "verify") == (0, "audit log intact: 0 entries verified\n")


# -- users -----------------------------------------------------------------------


def test_user_create_reads_the_password_from_stdin(
    env: Backend, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(PASSWORD + "\n"))
    code, out = run(
        "user", "create", "--username", "Alice", "--role", "admin", "--display-name", "Alice A"
    )
    assert (code, out) == (0, "created admin alice (id 1)\n")

    async def check() -> None:
        async with Core.open(Settings()) as core:
            pair = await core.auth.login("alice", PASSWORD)
            principal = await core.auth.authenticate(pair.access_token)
            assert principal.name == "alice"
            user = await core.users.get(principal, 1)
            assert (user.display_name, user.role.value) == ("Alice A", "admin")
            entries = (await core.audit.list(principal, action="users.create")).entries
            assert [(e.actor, e.action, e.target) for e in entries] == [
                ("cli", "users.create", "alice")
            ]

    cli.run_async(check())


def test_user_create_refuses_bad_input_and_creates_nothing(
    env: Backend, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert create_user(monkeypatch, "alice", "viewer", PASSWORD + "\n") == 0
    capsys.readouterr()

    assert create_user(monkeypatch, "bob", "viewer", "") == 1
    assert "no password" in error_line(capsys)
    assert create_user(monkeypatch, "bob", "viewer", "\n") == 1
    assert "no password" in error_line(capsys)
    assert create_user(monkeypatch, "bob", "viewer", "short\n") == 1
    assert "password" in error_line(capsys)
    assert create_user(monkeypatch, "ALICE", "admin", PASSWORD + "\n") == 1
    assert "taken" in error_line(capsys)

    assert sql(env.settings, "SELECT username FROM users") == [("alice",)]
    assert sql(env.settings, "SELECT count(*) FROM audit_log") == [(1,)]


# -- audit verify ----------------------------------------------------------------


def test_audit_verify_detects_tampering(env: Backend, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("alice", "bob", "carol"):
        assert create_user(monkeypatch, name, "viewer", PASSWORD + "\n") == 0
    assert run("audit", "verify") == (0, "audit log intact: 3 entries verified\n")

    sql(env.settings, "UPDATE audit_log SET target = 'mallory' WHERE id = 2")
    code, out = run("audit", "verify")
    assert code == 1
    assert out.startswith("audit log BROKEN at entry 2 (after 1 good entries)")
    assert "edited" in out

    sql(env.settings, "UPDATE audit_log SET target = 'bob' WHERE id = 2")
    assert run("audit", "verify")[0] == 0
    sql(env.settings, "DELETE FROM audit_log WHERE id = 2")
    code, out = run("audit", "verify")
    assert code == 1
    assert out.startswith("audit log BROKEN at entry 3 (after 1 good entries)")
    assert "deleted" in out


# -- settings --------------------------------------------------------------------


def test_settings_export_then_import(
    env: Backend, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "settings.json"
    code, out = run("settings", "export", "-o", str(path))
    document = json.loads(path.read_text(encoding="utf-8"))
    assert (code, out) == (0, f"wrote {len(document['settings'])} settings to {path}\n")
    assert document["format"] == "quarterdeck.settings"
    assert document["settings"][KEY] == 3
    assert "notify.smtp_password" not in document["settings"]

    document["settings"][KEY] = 9
    document["settings"]["notify.smtp_security"] = "tls"
    path.write_text(json.dumps(document), encoding="utf-8")

    code, out = run("settings", "import", str(path), "--dry-run")
    assert code == 0
    assert sorted(out.splitlines()) == [
        f"would change {KEY}: 3 -> 9",
        "would change notify.smtp_security: 'starttls' -> 'tls'",
    ]
    assert exported(capsys)[KEY] == 3

    code, out = run("settings", "import", str(path), "--reason", "from staging")
    assert code == 0
    assert sorted(out.splitlines()) == [
        f"changed {KEY}: 3 -> 9",
        "changed notify.smtp_security: 'starttls' -> 'tls'",
    ]
    now = exported(capsys)
    assert (now[KEY], now["notify.smtp_security"]) == (9, "tls")
    assert sql(
        env.settings, "SELECT actor, reason FROM setting_versions WHERE key = :k", k=KEY
    ) == [("cli", "from staging")]

    assert run("settings", "import", str(path)) == (
        0,
        "nothing to change: every setting already has the imported value\n",
    )
    assert run("audit", "verify") == (0, "audit log intact: 1 entries verified\n")


def test_export_to_a_place_that_cannot_be_written(
    env: Backend, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "missing" / "settings.json"
    assert run("settings", "export", "-o", str(target)) == (1, "")
    assert f"cannot write {target}" in error_line(capsys)
    assert not target.exists()


def test_secrets_only_leave_when_asked(env: Backend, tmp_path: Path) -> None:
    path = tmp_path / "secret.json"
    path.write_text(
        json.dumps(
            {
                "format": "quarterdeck.settings",
                "version": 1,
                "settings": {"notify.smtp_password": "hunter2-relay"},
            }
        ),
        encoding="utf-8",
    )
    assert run("settings", "import", str(path)) == (0, "changed notify.smtp_password: (secret)\n")
    stored = sql(env.settings, "SELECT value FROM setting_versions")
    assert len(stored) == 1
    assert "hunter2" not in stored[0][0]

    code, out = run("settings", "export")
    assert code == 0
    assert "hunter2" not in out
    code, out = run("settings", "export", "--include-secrets")
    assert json.loads(out)["settings"]["notify.smtp_password"] == "hunter2-relay"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "cannot read"),
        (b"{not json", "is not JSON"),
        (b"\xff\xfe{ not utf-8", "is not JSON"),
        (b'{"format": "something.else", "version": 1, "settings": {}}', "not a Quarterdeck"),
        (
            json.dumps(
                {
                    "format": "quarterdeck.settings",
                    "version": 1,
                    "settings": {KEY: 9, "notify.smtp_port": 70000, "no.such.key": 1},
                }
            ).encode(),
            "nothing was imported",
        ),
    ],
)
def test_a_bad_import_file_is_refused_and_changes_nothing(
    env: Backend,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    content: bytes | None,
    message: str,
) -> None:
    path = tmp_path / "import.json"
    if content is not None:
        path.write_bytes(content)
    assert run("settings", "import", str(path)) == (1, "")
    line = error_line(capsys)
    assert message in line
    if message == "nothing was imported":
        assert "notify.smtp_port: must be at most 65535" in line
        assert "no.such.key: unknown setting" in line
    assert sql(env.settings, "SELECT count(*) FROM setting_versions") == [(0,)]
    assert sql(env.settings, "SELECT count(*) FROM audit_log") == [(0,)]

"""`quarterdeck`: the command-line front door to the same core.

Every subcommand opens a `Core` (or just the database) from the start-up
settings (QUARTERDECK_* variables or the TOML file in QUARTERDECK_CONFIG),
acts as the system principal named "cli", and exits non-zero with a one-line
message on any error a user can fix.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import sys
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO, TypeVar

from backend.domain.errors import QuarterdeckError
from backend.domain.permissions import Role
from backend.domain.principal import Principal

if TYPE_CHECKING:
    from backend.config import Settings

# Heavy libraries (pydantic, SQLAlchemy, Redis) are imported by the commands
# that use them: `quarterdeck agent` runs on every node and must stay small.

T = TypeVar("T")
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


class CliError(Exception):
    """A problem the user can fix; printed without a traceback."""


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    """Run on a selector loop everywhere: psycopg's async mode refuses Windows' proactor."""
    with asyncio.Runner(loop_factory=asyncio.SelectorEventLoop) as runner:
        return runner.run(coro)


def _principal() -> Principal:
    return Principal.system("cli")


def _with_core(settings: Settings, action: Callable[[Any], Awaitable[T]]) -> T:
    from backend.core import Core  # noqa: PLC0415

    async def main() -> T:
        async with Core.open(settings) as core:
            return await action(core)

    return run_async(main())


# -- subcommands -----------------------------------------------------------------


def cmd_db_upgrade(settings: Settings, _args: argparse.Namespace, out: TextIO) -> int:
    from backend.storage import migrate  # noqa: PLC0415
    from backend.storage.database import Database  # noqa: PLC0415

    async def main() -> int:
        db = Database(settings.effective_database_url)
        try:
            before = await migrate.current_revision(db)
            await migrate.upgrade(db)
            after = await migrate.current_revision(db)
        finally:
            await db.dispose()
        if before == after:
            out.write(f"the database schema is up to date (revision {after})\n")
        else:
            out.write(f"upgraded the database schema from {before or 'empty'} to {after}\n")
        return EXIT_OK

    return run_async(main())


def _read_password(args: argparse.Namespace) -> str:
    if args.password_stdin or not sys.stdin.isatty():
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise CliError("no password on standard input")
        return password
    first = getpass.getpass("Password: ")
    if first != getpass.getpass("Repeat password: "):
        raise CliError("the passwords do not match; nothing was created")
    return first


def cmd_user_create(settings: Settings, args: argparse.Namespace, out: TextIO) -> int:
    password = _read_password(args)

    async def action(core: Any) -> int:
        user = await core.users.create(
            _principal(),
            username=args.username,
            password=password,
            role=args.role,
            display_name=args.display_name or "",
        )
        out.write(f"created {user.role.value} {user.username} (id {user.id})\n")
        return EXIT_OK

    return _with_core(settings, action)


def cmd_audit_verify(settings: Settings, _args: argparse.Namespace, out: TextIO) -> int:
    async def action(core: Any) -> int:
        result = await core.audit.verify(_principal())
        if result.ok:
            out.write(f"audit log intact: {result.checked} entries verified\n")
            return EXIT_OK
        out.write(
            f"audit log BROKEN at entry {result.first_broken_id} "
            f"(after {result.checked} good entries): {result.problem}\n"
        )
        return EXIT_FAILED

    return _with_core(settings, action)


def cmd_settings_export(settings: Settings, args: argparse.Namespace, out: TextIO) -> int:
    async def action(core: Any) -> dict[str, Any]:
        document: dict[str, Any] = await core.settings.export(
            _principal(), include_secrets=args.include_secrets
        )
        return document

    document = _with_core(settings, action)
    text = json.dumps(document, indent=2, sort_keys=True) + "\n"
    if args.output:
        try:
            Path(args.output).write_text(text, encoding="utf-8")
        except OSError as error:
            raise CliError(f"cannot write {args.output}: {error.strerror}") from None
        out.write(f"wrote {len(document['settings'])} settings to {args.output}\n")
    else:
        out.write(text)
    return EXIT_OK


def cmd_settings_import(settings: Settings, args: argparse.Namespace, out: TextIO) -> int:
    try:
        document = json.loads(Path(args.file).read_text(encoding="utf-8"))
    except OSError as error:
        raise CliError(f"cannot read {args.file}: {error.strerror}") from None
    except ValueError as error:  # bad JSON, or bytes that are not UTF-8 text
        raise CliError(f"{args.file} is not JSON: {error}") from None

    async def action(core: Any) -> int:
        changes = await core.settings.import_(
            _principal(), document, reason=args.reason, dry_run=args.dry_run
        )
        verb = "would change" if args.dry_run else "changed"
        if not changes:
            out.write("nothing to change: every setting already has the imported value\n")
        for change in changes:
            shown = "(secret)" if change.masked else f"{change.old!r} -> {change.new!r}"
            out.write(f"{verb} {change.key}: {shown}\n")
        return EXIT_OK

    return _with_core(settings, action)


def cmd_serve(settings: Settings, args: argparse.Namespace, _out: TextIO) -> int:
    from backend.api.server import ServeOptions, ServeRefused, serve  # noqa: PLC0415
    from backend.config import Settings  # noqa: PLC0415

    overrides = {
        key: value
        for key, value in (("database_url", args.database_url), ("redis_url", args.redis_url))
        if value
    }
    if overrides:
        settings = Settings(**{**settings.model_dump(exclude_none=True), **overrides})
    options = ServeOptions(
        host=args.host,
        port=args.port,
        workers=args.workers,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        insecure=args.insecure,
        log_level=args.log_level,
    )
    try:
        serve(settings, options)
    except ServeRefused as error:
        raise CliError(str(error)) from None
    return EXIT_OK


def cmd_help(_settings: Settings, _args: argparse.Namespace, out: TextIO) -> int:
    """No command: list the commands. (The `quarterdeck` script opens the desktop console
    instead, in `console.launcher`; the backend knows nothing of the console.)"""
    build_parser().print_help(out)
    return EXIT_USAGE


# -- parsing ---------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="quarterdeck",
        description=(
            "Quarterdeck's command line. `quarterdeck` without a command opens the desktop console."
        ),
    )
    parser.set_defaults(handler=cmd_help)
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")

    db = commands.add_parser("db", help="database schema").add_subparsers(
        metavar="ACTION", required=True
    )
    db.add_parser("upgrade", help="migrate the schema to this version").set_defaults(
        handler=cmd_db_upgrade
    )

    user = commands.add_parser("user", help="user accounts").add_subparsers(
        metavar="ACTION", required=True
    )
    create = user.add_parser("create", help="create a user (password from a prompt or stdin)")
    create.add_argument("--username", required=True)
    create.add_argument("--role", required=True, choices=[role.value for role in Role])
    create.add_argument("--display-name", default="")
    create.add_argument(
        "--password-stdin", action="store_true", help="read the password from stdin"
    )
    create.set_defaults(handler=cmd_user_create)

    audit = commands.add_parser("audit", help="audit log").add_subparsers(
        metavar="ACTION", required=True
    )
    audit.add_parser("verify", help="check the hash chain").set_defaults(handler=cmd_audit_verify)

    cfg = commands.add_parser("settings", help="run-time settings").add_subparsers(
        metavar="ACTION", required=True
    )
    export = cfg.add_parser("export", help="write every setting as JSON")
    export.add_argument("--output", "-o", help="file to write (default: standard output)")
    export.add_argument(
        "--include-secrets", action="store_true", help="include secret values in clear text"
    )
    export.set_defaults(handler=cmd_settings_export)
    imp = cfg.add_parser("import", help="apply a JSON export, all or nothing")
    imp.add_argument("file")
    imp.add_argument(
        "--dry-run", action="store_true", help="show what would change, change nothing"
    )
    imp.add_argument("--reason", default="import from the command line")
    imp.set_defaults(handler=cmd_settings_import)

    serve = commands.add_parser("serve", help="run the HTTP and WebSocket server")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument("--workers", type=int, default=1, help="worker processes")
    serve.add_argument("--tls-cert", type=Path, help="certificate chain (PEM)")
    serve.add_argument("--tls-key", type=Path, help="private key (PEM)")
    serve.add_argument(
        "--insecure", action="store_true", help="allow plain HTTP on a non-loopback address"
    )
    serve.add_argument("--database-url", help="overrides QUARTERDECK_DATABASE_URL")
    serve.add_argument("--redis-url", help="overrides QUARTERDECK_REDIS_URL")
    serve.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    serve.set_defaults(handler=cmd_serve)
    from backend.collector.agent import add_arguments as add_agent_arguments  # noqa: PLC0415

    agent = commands.add_parser("agent", help="push this host's metrics to a server")
    add_agent_arguments(agent)
    agent.set_defaults(handler=cmd_agent)
    return parser


def cmd_agent(args: argparse.Namespace) -> int:
    from backend.collector.agent import run_agent  # noqa: PLC0415

    return run_agent(args)


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    stream = out or sys.stdout
    args = build_parser().parse_args(argv)
    if args.handler is cmd_agent:
        # The agent needs none of the server's configuration.
        exit_code: int = cmd_agent(args)
        return exit_code
    handler: Callable[[Settings, argparse.Namespace, TextIO], int] = args.handler
    from pydantic import ValidationError  # noqa: PLC0415
    from redis.exceptions import ConnectionError as RedisConnectionError  # noqa: PLC0415
    from redis.exceptions import TimeoutError as RedisTimeoutError  # noqa: PLC0415
    from sqlalchemy.exc import InterfaceError, OperationalError  # noqa: PLC0415

    from backend.config import Settings  # noqa: PLC0415

    try:
        settings = Settings()
        return handler(settings, args, stream)
    except ValidationError as error:
        sys.stderr.write(f"quarterdeck: bad configuration: {error}\n")
    except QuarterdeckError as error:
        sys.stderr.write(f"quarterdeck: {error.message}\n")
    except CliError as error:
        sys.stderr.write(f"quarterdeck: {error}\n")
    except (OperationalError, InterfaceError) as error:
        reason = str(error.orig or error).strip().splitlines()[0]
        sys.stderr.write(f"quarterdeck: cannot use the database: {reason}\n")
    except (RedisConnectionError, RedisTimeoutError) as error:
        sys.stderr.write(f"quarterdeck: cannot reach Redis: {error}\n")
    except KeyboardInterrupt:
        sys.stderr.write("quarterdeck: interrupted\n")
    return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())

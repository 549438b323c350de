"""Throwaway Redis and PostgreSQL servers that a test may stop and start at will.

The machine's own PostgreSQL (5432) and Redis (6379) are shared with other
test runs and with CI, so a fault test must never take them down. Instead it
runs its own: a `redis-server` child process per test, and one PostgreSQL
cluster per session (initdb costs a second or two) with a database per test
cloned from a migrated template. Both keep their port across `stop()` and
`start()`, so a server pointed at them sees a real outage and a real return.

PostgreSQL refuses to run as root, so the cluster belongs to the `postgres`
OS user (`runuser`); without root, the binaries or that user, the fixtures
skip, or fail when QUARTERDECK_REQUIRE_SERVICES=1 (see `tests.services`).

Use the fixtures by naming this module in a test module's `pytest_plugins`.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NoReturn

import psycopg
import pytest

from backend.storage import migrate
from backend.storage.database import Database
from tests.services import services_required

START_TIMEOUT = 30.0
"""Seconds a server may take to accept connections before the fixture gives up."""
PG_OS_USER = "postgres"
TEMPLATE = "qd_private_template"


def _unavailable(reason: str) -> NoReturn:
    message = f"private test services unavailable: {reason}"
    if services_required():
        pytest.fail(message + " and QUARTERDECK_REQUIRE_SERVICES=1")
    pytest.skip(message)


def free_port() -> int:
    """A loopback port nobody listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _wait_until(condition: Callable[[], bool], what: str) -> None:
    """Poll `condition()` every 20 ms until true, or raise after START_TIMEOUT."""
    deadline = time.monotonic() + START_TIMEOUT
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"gave up waiting for {what} after {START_TIMEOUT:.0f} s")
        time.sleep(0.02)


# -- leftovers of killed runs ---------------------------------------------------

OWNER_FILE = "owner.pid"
"""In each private server's directory: the pid of the test process that made it."""
REDIS_PREFIX = "qd-redis-"
PG_PREFIX = "qd-pg-"


def _private_dir(prefix: str) -> Path:
    """A new temporary directory, marked as this process's."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    (path / OWNER_FILE).write_text(str(os.getpid()))
    return path


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _read_pid(path: Path) -> int | None:
    """The pid on the first line of `path` (our marker, redis.pid, postmaster.pid)."""
    try:
        first = path.read_text().split("\n", 1)[0].strip()
    except OSError:
        return None
    return int(first) if first.isdigit() else None


def sweep_leftovers() -> None:
    """Stop and remove private servers whose test run was killed before cleaning up.

    A run killed by a signal never reaches its fixtures' teardown, and the
    cluster pg_ctl started lives on by design; without this, each such run
    would leave a server and its port behind until the machine restarts.
    """
    root = Path(tempfile.gettempdir())
    for path in [*root.glob(f"{REDIS_PREFIX}*"), *root.glob(f"{PG_PREFIX}*")]:
        owner = _read_pid(path / OWNER_FILE)
        if owner is None or _alive(owner):
            continue  # not ours to judge, or its run is still going
        # Redis dies at SIGKILL; the postmaster at SIGQUIT ends its backends too.
        for pidfile, stop in (
            (path / "redis.pid", signal.SIGKILL),
            (path / "data" / "postmaster.pid", signal.SIGQUIT),
        ):
            server_pid = _read_pid(pidfile)
            if server_pid is not None and _alive(server_pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(server_pid, signal.SIGCONT)
                    os.kill(server_pid, stop)
        shutil.rmtree(path, ignore_errors=True)


# -- Redis ---------------------------------------------------------------------


class PrivateRedis:
    """A `redis-server` child process on a fixed loopback port, with no persistence.

    Stopping it loses every key, as a real Redis restart without persistence
    does; that is part of what the server must survive.
    """

    def __init__(self, binary: str, workdir: Path, port: int | None = None) -> None:
        self.binary = binary
        self.workdir = workdir
        self.port = port or free_port()
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        if self.running:
            return
        log = (self.workdir / "redis.log").open("ab")
        with log:
            self._process = subprocess.Popen(
                [
                    self.binary,
                    "--port", str(self.port),
                    "--bind", "127.0.0.1",
                    "--save", "",
                    "--appendonly", "no",
                    "--daemonize", "no",
                    "--dir", str(self.workdir),
                    "--pidfile", str(self.workdir / "redis.pid"),
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )  # fmt: skip
        process = self._process

        def up() -> bool:
            if process.poll() is not None:
                raise RuntimeError(f"redis-server exited with {process.returncode}")
            return self._answers_ping()

        _wait_until(up, f"Redis on port {self.port} to start")

    def _answers_ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def pause(self) -> None:
        """Freeze the server (SIGSTOP): connections stay open but nothing answers.

        A hung server or a network that drops packets looks like this, and
        only timeouts bound how long a client waits.
        """
        if self._process is not None:
            self._process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        if self._process is not None:
            self._process.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        """Terminate the process and wait until the port is closed."""
        process, self._process = self._process, None
        if process is None:
            return
        process.send_signal(signal.SIGCONT)  # a paused server cannot act on SIGTERM
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        _wait_until(lambda: not _listening(self.port), f"Redis on port {self.port} to stop")


@contextlib.contextmanager
def private_redis_server() -> Iterator[PrivateRedis]:
    binary = shutil.which("redis-server")
    if binary is None:
        _unavailable("redis-server is not installed")
    sweep_leftovers()
    workdir = _private_dir(REDIS_PREFIX)
    server = PrivateRedis(binary, workdir)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


# -- PostgreSQL ----------------------------------------------------------------


def _postgres_bin() -> Path | None:
    """The newest installed PostgreSQL's bin directory (Debian layout)."""
    found = glob.glob("/usr/lib/postgresql/*/bin/initdb")
    if not found:
        return None

    def version(path: str) -> tuple[int, ...]:
        name = Path(path).parent.parent.name
        return tuple(int(part) for part in name.split(".") if part.isdigit())

    return Path(max(found, key=version)).parent


class PrivateCluster:
    """A PostgreSQL cluster in a temporary directory, owned by the `postgres` OS user.

    Tuned for throwaway use: trust authentication on loopback only, and no
    fsync, since nothing here must survive a machine crash. Commits stay
    synchronous, though: a test's `stop("immediate")` is a crash of the
    server process, and a commit it acknowledged must survive that.
    """

    def __init__(self, bindir: Path, base: Path, port: int | None = None) -> None:
        self.bindir = bindir
        self.base = base
        self.data = base / "data"
        self.port = port or free_port()

    def _run(self, *command: str) -> None:
        result = subprocess.run(
            ["runuser", "-u", PG_OS_USER, "--", *command],
            cwd=self.base,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            check=False,
            timeout=60,
        )
        if result.returncode != 0:
            output = (result.stdout + result.stderr).decode(errors="replace")
            raise RuntimeError(f"{Path(command[0]).name} failed ({result.returncode}): {output}")

    def admin_url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    @property
    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists() and _listening(self.port)

    def init(self) -> None:
        self._run(
            str(self.bindir / "initdb"),
            "-D", str(self.data),
            "-U", "postgres",
            "-A", "trust",
            "-E", "UTF8",
            "--locale=C",
            "--no-sync",
        )  # fmt: skip

    def start(self) -> None:
        if self.running:
            return
        options = " ".join(
            (
                f"-p {self.port}",
                "-c listen_addresses=127.0.0.1",
                f"-c unix_socket_directories={self.base}",
                "-c fsync=off",
                "-c full_page_writes=off",
                "-c max_connections=100",
            )
        )
        self._run(
            str(self.bindir / "pg_ctl"),
            "-D", str(self.data),
            "-l", str(self.base / "postgres.log"),
            "-o", options,
            "-w", "-t", str(int(START_TIMEOUT)),
            "start",
        )  # fmt: skip
        _wait_until(lambda: _listening(self.port), f"PostgreSQL on port {self.port} to start")

    def stop(self, mode: str = "fast") -> None:
        """Shut down (`fast` ends sessions cleanly, `immediate` is like a crash)."""
        if not (self.data / "postmaster.pid").exists():
            return
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")
        _wait_until(lambda: not _listening(self.port), f"PostgreSQL on port {self.port} to stop")

    def create_database(self, name: str, template: str | None = None) -> str:
        """Create `name` (cloned from `template` when given) and return its URL."""
        clause = f' TEMPLATE "{template}"' if template else ""
        with psycopg.connect(self.admin_url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"{clause}')
        return self.admin_url(name)

    def drop_database(self, name: str) -> None:
        with psycopg.connect(self.admin_url(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _migrate(url: str) -> None:
    async def run() -> None:
        db = Database(url.replace("postgresql://", "postgresql+psycopg://", 1))
        try:
            await migrate.upgrade(db)
        finally:
            await db.dispose()

    asyncio.run(run())


@contextlib.contextmanager
def private_postgres_cluster() -> Iterator[PrivateCluster]:
    """A running cluster holding a migrated template database, removed at the end."""
    if os.geteuid() != 0:
        _unavailable("a private PostgreSQL needs root (to run as the postgres user)")
    bindir = _postgres_bin()
    if bindir is None or shutil.which("runuser") is None:
        _unavailable("PostgreSQL's server binaries or runuser are not installed")
    try:
        owner = pwd.getpwnam(PG_OS_USER)
    except KeyError:
        _unavailable(f"there is no {PG_OS_USER!r} OS user")
    sweep_leftovers()
    base = _private_dir(PG_PREFIX)
    os.chown(base, owner.pw_uid, owner.pw_gid)
    cluster = PrivateCluster(bindir, base)
    try:
        cluster.init()
        cluster.start()
        _migrate(cluster.create_database(TEMPLATE))
        yield cluster
    finally:
        with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
            cluster.stop("immediate")
        shutil.rmtree(base, ignore_errors=True)


class PrivatePostgres:
    """One test's database on the session's private cluster.

    `stop()` and `start()` act on the whole cluster: only fault tests use
    it, one at a time, and the fixture brings it back up after each test.
    """

    def __init__(self, cluster: PrivateCluster, name: str) -> None:
        self.cluster = cluster
        self.name = name

    @property
    def url(self) -> str:
        return self.cluster.admin_url(self.name)

    @property
    def port(self) -> int:
        return self.cluster.port

    def stop(self, mode: str = "fast") -> None:
        self.cluster.stop(mode)

    def start(self) -> None:
        self.cluster.start()


# -- pytest fixtures -----------------------------------------------------------


@pytest.fixture(scope="session")
def private_cluster() -> Iterator[PrivateCluster]:
    with private_postgres_cluster() as cluster:
        yield cluster


@pytest.fixture
def private_postgres(private_cluster: PrivateCluster) -> Iterator[PrivatePostgres]:
    """A migrated database of this test's own on the private cluster."""
    private_cluster.start()
    name = f"qd_{uuid.uuid4().hex[:12]}"
    private_cluster.create_database(name, template=TEMPLATE)
    try:
        yield PrivatePostgres(private_cluster, name)
    finally:
        private_cluster.start()
        private_cluster.drop_database(name)


@pytest.fixture
def private_redis() -> Iterator[PrivateRedis]:
    with private_redis_server() as server:
        yield server

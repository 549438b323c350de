"""What every HTTP bench shares: a scratch store, a real server process, its CPU.

`bench.api`, `bench.fanout` and `bench.http_ingest` start `quarterdeck serve`
the same way: an environment with a data directory of their own (and a
scratch PostgreSQL database and Redis key prefix when asked, removed
afterwards), an admin made with the CLI, and the server on a free loopback
port until the block ends. The server and the CLI run as `python -m
backend.cli` with this checkout first on `PYTHONPATH`, so a bench measures
the tree it is started from, not whichever copy the virtualenv's
`quarterdeck` script was installed from.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PASSWORD = "bench-password-not-secret"
DEFAULT_POSTGRES = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_REDIS = "redis://127.0.0.1:6379/0"
SETTINGS_FORMAT = {"format": "quarterdeck.settings", "version": 1}
"""The envelope `quarterdeck settings import` reads (backend.services.settings)."""
START_TIMEOUT = 60.0
"""Seconds a server may take to answer /healthz (a loaded machine, a profiler)."""


def _tree_path() -> str:
    """PYTHONPATH with the checkout holding this package first."""
    tree = str(Path(__file__).resolve().parent.parent)
    inherited = os.environ.get("PYTHONPATH")
    return tree if not inherited else os.pathsep.join([tree, inherited])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def cli(env: dict[str, str], *args: str, stdin: str | None = None) -> str:
    """Run `quarterdeck ARGS` (as `python -m backend.cli`); its output, or CalledProcessError."""
    done = subprocess.run(
        [sys.executable, "-m", "backend.cli", *args],
        env=env,
        input=stdin,
        text=True,
        check=True,
        capture_output=True,
    )
    return done.stdout


@contextlib.contextmanager
def storage(postgres: str | None, redis: str | None, data_dir: Path) -> Iterator[dict[str, str]]:
    """The server's environment; a scratch PostgreSQL database and Redis prefix when asked.

    Both are removed afterwards; the machine's PostgreSQL and Redis are only
    ever used through a database and a key prefix of the bench's own.
    """
    env = {
        **os.environ,
        "PYTHONPATH": _tree_path(),
        "QUARTERDECK_DATA_DIR": str(data_dir),
        "QUARTERDECK_SECRET_KEY": secrets.token_urlsafe(48),
    }
    database: str | None = None
    if postgres:
        import psycopg

        database = f"qd_bench_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(postgres, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{database}"')
        env["QUARTERDECK_DATABASE_URL"] = postgres.rsplit("/", 1)[0] + f"/{database}"
    prefix = f"qdbench:{uuid.uuid4().hex}:"
    if redis:
        env["QUARTERDECK_REDIS_URL"] = redis
        env["QUARTERDECK_REDIS_PREFIX"] = prefix
    try:
        if database:
            cli(env, "db", "upgrade")
        yield env
    finally:
        if redis:
            import redis as redis_client

            client = redis_client.Redis.from_url(redis)
            try:
                keys = list(client.scan_iter(f"{prefix}*"))
                if keys:
                    client.delete(*keys)
            finally:
                client.close()
        if database and postgres:
            import psycopg

            with psycopg.connect(postgres, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


def import_settings(env: dict[str, str], values: dict[str, Any], directory: Path) -> None:
    """Apply run-time settings with `quarterdeck settings import` (all or nothing)."""
    path = directory / "bench-settings.json"
    path.write_text(json.dumps({**SETTINGS_FORMAT, "settings": values}))
    cli(env, "settings", "import", str(path), "--reason", "benchmark")


@dataclass(frozen=True)
class Server:
    url: str
    pid: int


@contextlib.contextmanager
def server(
    env: dict[str, str], log_path: Path, *, workers: int = 1, profile: Path | None = None
) -> Iterator[Server]:
    """`quarterdeck serve` on a free loopback port until the block ends.

    With `profile`, the server runs under pyinstrument (one worker only) and
    its text report is written there when it stops; a `.pyisession` path
    keeps the whole session instead, for `pyinstrument --load FILE -r text
    --show-all` (the text report hides library frames, where FastAPI spends).
    """
    if profile is not None and workers != 1:
        raise RuntimeError("--profile needs --workers 1 (pyinstrument follows one process)")
    port = free_port()
    # `-m backend.cli` (never the `quarterdeck` script): the server runs the
    # code of the tree the bench is started from, as the CLI helper does.
    command = [sys.executable]
    if profile is not None:
        renderer = "session" if profile.suffix == ".pyisession" else "text"
        command += ["-m", "pyinstrument", "-r", renderer, "-o", str(profile), "-m", "backend.cli"]
    else:
        command += ["-m", "backend.cli"]
    command += ["serve", "--port", str(port), "--log-level", "warning"]
    command += ["--workers", str(workers)]
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(command, env=env, stdout=log_file, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the server did not start:\n" + log_path.read_text())
            try:
                with urllib.request.urlopen(f"{url}/healthz", timeout=1):
                    break
            except OSError:
                time.sleep(0.1)
        yield Server(url, process.pid)
    finally:
        # uvicorn shuts down cleanly, then re-raises the signal: SIGINT becomes a
        # KeyboardInterrupt, after which pyinstrument still writes its report.
        process.send_signal(signal.SIGINT if profile is not None else signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def http(url: str, method: str, path: str, body: Any = None, token: str | None = None) -> Any:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url + path, data=data, headers=headers, method=method)
    with urllib.request.urlopen(request, timeout=60) as response:
        raw = response.read()
    return json.loads(raw) if raw else None


def sign_in(url: str, env: dict[str, str], scopes: list[str]) -> tuple[str, str]:
    """Create an admin with the CLI, sign in over HTTP: (access token, API key with `scopes`)."""
    cli(env, "user", "create", "--username", "bench", "--role", "admin", "--password-stdin",
        stdin=PASSWORD + "\n")  # fmt: skip
    login = http(url, "POST", "/api/v1/auth/login", {"username": "bench", "password": PASSWORD})
    token: str = login["access_token"]
    key = http(url, "POST", "/api/v1/api-keys", {"name": "bench", "scopes": scopes}, token)
    return token, key["secret"]


class CpuMeter:
    """CPU seconds of a process and all its descendants (uvicorn's workers)."""

    def __init__(self, pid: int) -> None:
        import psutil

        self._root = psutil.Process(pid)
        self._seen: dict[int, Any] = {}

    def seconds(self) -> float:
        import psutil

        total = 0.0
        for process in [self._root, *self._root.children(recursive=True)]:
            # Keep the Process objects: psutil caches their identity (pid reuse).
            known = self._seen.setdefault(process.pid, process)
            with contextlib.suppress(psutil.NoSuchProcess):
                times = known.cpu_times()
                total += times.user + times.system
        return total


def machine_busy() -> float:
    """CPU seconds the whole machine spent busy (all cores), for telling others' load apart."""
    import psutil

    times = psutil.cpu_times()
    return sum(times) - times.idle - getattr(times, "iowait", 0.0)


def children_cpu() -> float:
    """CPU seconds used by this process's waited-for children (wrk runs)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def self_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def show_problems(log_path: Path) -> None:
    lines = log_path.read_text(errors="replace").splitlines()
    problems = [line for line in lines if '"level": "error"' in line or '"warning"' in line]
    if problems:
        print(f"server log: {len(problems)} warnings and errors; the last:\n{problems[-1][:600]}")


def note_other_load(cores: float, *, services: bool) -> None:
    """Say when other processes competed for the machine during a run."""
    if services:
        print(
            f"other processes, PostgreSQL and Redis among them, kept up to {cores:.2f} cores "
            "busy during a run"
        )
    elif cores > 0.2:
        print(
            f"note: other processes kept up to {cores:.2f} cores busy during a run; "
            "the figures understate this server"
        )


def storage_label(postgres: str | None, redis: str | None, workers: int) -> str:
    store = "PostgreSQL" if postgres else "SQLite"
    bus = "Redis" if redis else "memory bus"
    plural = "s" if workers != 1 else ""
    return f"{store}, {bus}, {workers} worker{plural}"

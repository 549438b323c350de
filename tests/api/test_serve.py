"""`quarterdeck serve` as a user runs it: a real process, plain HTTP and TLS."""

from __future__ import annotations

import os
import socket
import ssl
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from backend.api.server import ServeOptions, ServeRefused, check, is_loopback
from tests.api.server import self_signed


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _serve(tmp_path: Path, *args: str) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "QUARTERDECK_DATA_DIR": str(tmp_path),
        "QUARTERDECK_SECRET_KEY": "serve-test-secret-key-0123456789abcdef",
    }
    env.pop("QUARTERDECK_DATABASE_URL", None)
    env.pop("QUARTERDECK_REDIS_URL", None)
    return subprocess.Popen(
        [sys.executable, "-m", "backend.cli", "serve", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


@pytest.fixture
def stop_after() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout:
            process.stdout.close()


def _wait_for(url: str, **client: object) -> httpx.Response:
    deadline = time.monotonic() + 30
    while True:
        try:
            with httpx.Client(**client) as http:  # type: ignore[arg-type]
                return http.get(url, timeout=2)
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_plain_http_only_on_loopback_unless_insecure() -> None:
    assert is_loopback("127.0.0.1")
    assert is_loopback("::1")
    assert is_loopback("localhost")
    assert not is_loopback("0.0.0.0")
    check(ServeOptions(host="127.0.0.1"))
    check(ServeOptions(host="0.0.0.0", insecure=True))
    check(ServeOptions(host="0.0.0.0", tls_cert=Path("c"), tls_key=Path("k")))
    with pytest.raises(ServeRefused, match="plain HTTP"):
        check(ServeOptions(host="0.0.0.0"))
    with pytest.raises(ServeRefused, match="both"):
        check(ServeOptions(host="127.0.0.1", tls_cert=Path("c")))


def test_cli_refuses_public_plain_http(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "backend.cli", "serve", "--host", "0.0.0.0"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "QUARTERDECK_DATA_DIR": str(tmp_path)},
    )
    assert result.returncode == 1
    assert "refusing to serve plain HTTP" in result.stderr


def test_serves_plain_http_on_loopback(
    tmp_path: Path, stop_after: list[subprocess.Popen[bytes]]
) -> None:
    port = _free_port()
    stop_after.append(_serve(tmp_path, "--port", str(port)))
    response = _wait_for(f"http://127.0.0.1:{port}/readyz")
    assert response.status_code == 200
    assert response.json()["status"] == "ready"


def test_serves_tls_1_2_or_newer(tmp_path: Path, stop_after: list[subprocess.Popen[bytes]]) -> None:
    cert, key = self_signed(tmp_path)
    port = _free_port()
    stop_after.append(
        _serve(tmp_path, "--port", str(port), "--tls-cert", str(cert), "--tls-key", str(key))
    )
    response = _wait_for(
        f"https://127.0.0.1:{port}/healthz", verify=ssl.create_default_context(cafile=str(cert))
    )
    assert response.json() == {"status": "ok"}
    # A client limited to TLS 1.1 is refused.
    old = ssl.create_default_context(cafile=str(cert))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # TLS 1.1 is deprecated: the point
        old.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
        old.maximum_version = ssl.TLSVersion.TLSv1_1
    with pytest.raises(httpx.ConnectError), httpx.Client(verify=old) as http:
        http.get(f"https://127.0.0.1:{port}/healthz", timeout=5)
    # And the untrusting default client refuses the self-signed certificate.
    with pytest.raises(httpx.ConnectError), httpx.Client() as http:
        http.get(f"https://127.0.0.1:{port}/healthz", timeout=5)

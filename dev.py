#!/usr/bin/env python3
"""Set up and run Quarterdeck from a clean clone, with nothing but Python.

    python3 dev.py run     # the app on the embedded default (SQLite, no servers)
    python3 dev.py test    # lint, type checks, architecture contracts, the test suite
    python3 dev.py setup   # only create/refresh .venv from the lock file

The virtual environment lives in .venv and is refreshed whenever the lock
file changes, so both commands are safe to repeat.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
LOCK = ROOT / "requirements" / "dev.lock"
STAMP = VENV / ".installed-lock"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")


def tool(name: str) -> str:
    return str(BIN / (name + (".exe" if os.name == "nt" else "")))


def sh(*command: str, env: dict[str, str] | None = None) -> None:
    print("+", " ".join(command), flush=True)
    subprocess.run(command, cwd=ROOT, check=True, env=env)


def setup() -> None:
    if sys.version_info < (3, 11):  # noqa: UP036 - dev.py may be started by an older python3
        sys.exit("Quarterdeck needs Python 3.11 or newer")
    if not (BIN / "python").exists() and not (BIN / "python.exe").exists():
        print(f"creating {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    digest = hashlib.sha256(LOCK.read_bytes() + (ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if STAMP.exists() and STAMP.read_text() == digest:
        return
    pip = [tool("python"), "-m", "pip", "--disable-pip-version-check", "-q"]
    sh(*pip, "install", "-r", str(LOCK))
    sh(*pip, "install", "--no-deps", "-e", ".")
    STAMP.write_text(digest)


def test(extra: list[str]) -> None:
    setup()
    sh(tool("ruff"), "check", ".")
    sh(tool("ruff"), "format", "--check", ".")
    sh(tool("mypy"))
    sh(tool("lint-imports"))
    sh(tool("pytest"), *extra)


def run(extra: list[str]) -> None:
    setup()
    sh(tool("quarterdeck"), *extra)


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in ("run", "test", "setup"):
        sys.exit(__doc__)
    command, extra = sys.argv[1], sys.argv[2:]
    try:
        if command == "setup":
            setup()
        elif command == "test":
            test(extra)
        else:
            run(extra)
    except subprocess.CalledProcessError as error:
        sys.exit(error.returncode)


if __name__ == "__main__":
    main()

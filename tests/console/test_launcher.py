"""`quarterdeck`: the window with no arguments, the command line with any, Qt only for the window.

Run as separate processes, since what matters is what a fresh interpreter
imports and how it exits.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import TEST_SECRET

ROOT = Path(__file__).resolve().parents[2]


def _environment(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("QUARTERDECK_")}
    env.update(
        QUARTERDECK_DATA_DIR=str(tmp_path / "data"),
        QUARTERDECK_SECRET_KEY=TEST_SECRET,
        QT_QPA_PLATFORM="offscreen",
        # QSettings and keyring look here: never the real profile of whoever runs the tests.
        HOME=str(tmp_path),
        XDG_CONFIG_HOME=str(tmp_path / "config"),
        XDG_DATA_HOME=str(tmp_path / "share"),
        PYTHONPATH=str(ROOT),
    )
    return env


def test_commands_run_the_cli_without_qt(tmp_path: Path) -> None:
    script = (
        "import sys\n"
        "from console.launcher import main\n"
        "code = main(['db', 'upgrade'])\n"
        "print('exit', code, 'qt', 'PySide6' in sys.modules, 'qasync' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        env=_environment(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "upgraded the database schema" in done.stdout
    assert "exit 0 qt False False" in done.stdout


def test_python_m_console_passes_arguments_to_the_cli(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "console", "--help"],
        env=_environment(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "serve" in done.stdout
    assert "opens the desktop console" in " ".join(done.stdout.split())


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT to a child process is POSIX")
def test_no_arguments_opens_the_window_and_ctrl_c_closes_it_cleanly(tmp_path: Path) -> None:
    """The whole app starts (connection window), and quits cleanly on Ctrl+C in the terminal."""
    process = subprocess.Popen(
        [sys.executable, "-X", "dev", "-m", "console"],
        env=_environment(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(4)
        assert process.poll() is None, process.communicate()
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, err
    assert "Traceback" not in err, err
    assert "Warning" not in err, err
    del out

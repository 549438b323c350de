"""`python -m bench startup`: time to the first painted main window, and memory after live use.

Each run is a new Python process (`python -m bench.startup --child`), as a
user's start is: it imports the console, creates the QApplication with the
app's theme and hooks, opens the embedded backend (SQLite, the local
collector and the background jobs on, as `quarterdeck` runs them), signs in
with a password (argon2 included), builds the main window on its first
panel and shows it. The figure is the time from the process's creation (as
the OS recorded it) to the window's first paint event. The connection
window and the sign-in dialog are skipped: what a person spends typing is
not start-up time, and the work behind them (opening the backend, signing
in) is counted.

Then one longer run keeps the window open on the Hosts panel, with this
machine's live charts updating every second, for `--live-seconds` (60 by
default) and reports the process's resident memory at the end.

Targets (issue 4): first paint under 1.5 s (median of `--runs`, default 5)
and under 250 MB resident after a minute of live charts. The data
directory is a scratch one, migrated and given an admin beforehand by the
`quarterdeck` command line, so the runs measure a normal start, not a first
install. Runs offscreen (`QT_QPA_PLATFORM=offscreen`) unless a display is
set. Exit status 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

STARTUP_TARGET = 1.5
MEMORY_TARGET_MB = 250.0
USERNAME = "bench"
PASSWORD = "bench-startup-password"


def _child(data_dir: str, live_seconds: float) -> int:
    """The measured process: everything from here on counts."""
    import psutil

    created = psutil.Process().create_time()
    import asyncio

    import qasync
    from PySide6.QtCore import QEvent, QObject
    from PySide6.QtWidgets import QApplication

    from backend.config import Settings
    from console.app import configure_application
    from console.client.local import LocalClient
    from console.mainwindow import MainWindow

    app = QApplication([sys.argv[0]])
    configure_application(app)
    app.setQuitOnLastWindowClosed(False)  # as console.app: the loop ends when run() does
    painted = asyncio.Event()
    first_paint: list[float] = []

    class FirstPaint(QObject):
        def eventFilter(self, watched: QObject, event: QEvent) -> bool:
            if event.type() == QEvent.Type.Paint and not first_paint:
                first_paint.append(time.time())
                painted.set()
            return False

    async def run() -> dict[str, float]:
        settings = Settings(data_dir=Path(data_dir), collect_local=True)
        client = await LocalClient.open(settings, name="Embedded")
        me = await client.sign_in(USERNAME, PASSWORD)
        window = MainWindow(client, me, key="embedded")
        watcher = FirstPaint(window)
        window.installEventFilter(watcher)
        window.resize(1280, 800)
        window.show()
        await painted.wait()
        result = {"first_paint_s": first_paint[0] - created}
        if live_seconds > 0:
            window.show_panel("hosts")
            await asyncio.sleep(live_seconds)
            result["rss_mb"] = psutil.Process().memory_info().rss / 1e6
        await window.shutdown()
        window.close()
        await client.close()
        return result

    with asyncio.Runner(loop_factory=lambda: qasync.QEventLoop(app)) as runner:
        result = runner.run(run())
    print(json.dumps(result), flush=True)
    return 0


def _prepare(data_dir: Path) -> dict[str, str]:
    env = {
        **os.environ,
        "QUARTERDECK_DATA_DIR": str(data_dir),
        "QT_QPA_PLATFORM": os.environ.get("QT_QPA_PLATFORM", "offscreen"),
    }
    env.pop("QUARTERDECK_DATABASE_URL", None)
    env.pop("QUARTERDECK_REDIS_URL", None)
    cli = [sys.executable, "-m", "console.launcher"]
    subprocess.run([*cli, "db", "upgrade"], env=env, check=True, capture_output=True)
    subprocess.run(
        [*cli, "user", "create", "--username", USERNAME, "--role", "admin", "--password-stdin"],
        input=PASSWORD + "\n",
        text=True,
        env=env,
        check=True,
        capture_output=True,
    )
    return env


def _measure(env: dict[str, str], data_dir: Path, live_seconds: float) -> dict[str, float]:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.startup",
            "--child",
            str(data_dir),
            "--live-seconds",
            str(live_seconds),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=live_seconds + 120,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"the measured process failed:\n{done.stderr[-3000:]}")
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench startup", description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--live-seconds", type=float, default=60.0)
    parser.add_argument("--child", metavar="DATA_DIR", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return _child(args.child, args.live_seconds)

    with tempfile.TemporaryDirectory(prefix="quarterdeck-bench-startup-") as scratch:
        data_dir = Path(scratch) / "data"
        env = _prepare(data_dir)
        _measure(env, data_dir, 0)  # warm the OS file cache: every run then starts alike
        starts = [_measure(env, data_dir, 0)["first_paint_s"] for _ in range(args.runs)]
        live = _measure(env, data_dir, args.live_seconds)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    median = statistics.median(starts)
    print(
        f"startup: process start -> first painted main window (embedded, signed in), "
        f"{args.runs} runs, load average {load:.1f}"
    )
    print(f"  median {median:.3f} s   min {min(starts):.3f} s   max {max(starts):.3f} s")
    print(
        f"memory: resident after {args.live_seconds:.0f} s of live charts on the Hosts panel: "
        f"{live['rss_mb']:.0f} MB"
    )
    ok = median < STARTUP_TARGET and live["rss_mb"] < MEMORY_TARGET_MB
    print(
        f"targets: first paint < {STARTUP_TARGET} s, memory < {MEMORY_TARGET_MB:.0f} MB: "
        + ("met" if ok else "MISSED")
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

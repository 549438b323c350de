"""Build the installable Quarterdeck for this OS, and prove it starts.

    .venv/bin/python packaging/build.py            # bundle, smoke test, package
    .venv/bin/python packaging/build.py --no-package

1. Renders the app icon from resources/icons/quarterdeck.svg (PNG; ICO on
   Windows) with Qt, so no image tool is needed.
2. Runs PyInstaller on packaging/quarterdeck.spec: a one-folder bundle in
   build/dist/quarterdeck (one folder starts in a third of a second; one
   file unpacks itself on every start, ~1.3 s, QT-NOTES).
3. Smoke-tests the bundle as a user would run it, on a scratch data
   directory: `db upgrade` (the migrations travel as data files),
   `user create` (argon2, the CLI), `audit verify`, and the window itself
   (offscreen), which must stay up for a few seconds without a traceback.
4. Packages it: on Linux a .deb (installs to /opt/quarterdeck, with
   /usr/bin/quarterdeck, the .desktop entry and the icon) and a .tar.gz; on
   Windows and macOS a .zip of the folder (of Quarterdeck.app on macOS).
   Signing and notarising, and a Windows installer wizard, need the
   vendors' tools and certificates and are not done here.

Each build is for the OS and CPU it runs on: build on each target OS.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BUILD = ROOT / "build"
DIST = BUILD / "dist"
BUNDLE = DIST / "quarterdeck"
ICONS = BUILD / "icons"
SPEC = ROOT / "packaging" / "quarterdeck.spec"
WINDOW_SECONDS = 4.0
"""How long the window must stay up in the smoke test."""


def version() -> str:
    from importlib.metadata import version as dist_version  # noqa: PLC0415

    return dist_version("quarterdeck")


def render_icons() -> None:
    """The SVG app icon as a 256 px PNG (and ICO for Windows), drawn by Qt."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import Qt  # noqa: PLC0415
    from PySide6.QtGui import QGuiApplication, QImage, QPainter  # noqa: PLC0415
    from PySide6.QtSvg import QSvgRenderer  # noqa: PLC0415

    _app = QGuiApplication.instance() or QGuiApplication([])
    ICONS.mkdir(parents=True, exist_ok=True)
    renderer = QSvgRenderer(str(ROOT / "resources" / "icons" / "quarterdeck.svg"))
    image = QImage(256, 256, QImage.Format.Format_ARGB32)
    image.fill(Qt.GlobalColor.transparent)
    painter = QPainter(image)
    renderer.render(painter)
    painter.end()
    for name in ("quarterdeck.png", "quarterdeck.ico"):
        if not image.save(str(ICONS / name)):
            raise RuntimeError(f"Qt could not write {name}")


def bundle() -> Path:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "PyInstaller",
            "--noconfirm",
            "--clean",
            "--log-level",
            "WARN",
            "--distpath",
            str(DIST),
            "--workpath",
            str(BUILD / "work"),
            str(SPEC),
        ],
        cwd=ROOT,
        check=True,
    )
    name = "quarterdeck.exe" if os.name == "nt" else "quarterdeck"
    program = BUNDLE / name
    if not program.exists():
        raise RuntimeError(f"PyInstaller made no {program}")
    return program


def smoke_test(program: Path) -> None:
    """Run the bundle as a user would, on a scratch data directory."""
    with tempfile.TemporaryDirectory(prefix="quarterdeck-smoke-") as scratch:
        env = {
            **os.environ,
            "QUARTERDECK_DATA_DIR": str(Path(scratch) / "data"),
            "QT_QPA_PLATFORM": "offscreen",
            "XDG_CONFIG_HOME": str(Path(scratch) / "config"),
            "HOME": scratch,
        }
        env.pop("QUARTERDECK_DATABASE_URL", None)
        env.pop("QUARTERDECK_REDIS_URL", None)

        def cli(*args: str, stdin: str = "") -> str:
            done = subprocess.run(
                [str(program), *args],
                input=stdin,
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
            if done.returncode != 0:
                raise RuntimeError(f"`quarterdeck {' '.join(args)}` failed:\n{done.stderr[-3000:]}")
            return done.stdout

        cli("db", "upgrade")
        cli(
            "user",
            "create",
            "--username",
            "smoke",
            "--role",
            "admin",
            "--password-stdin",
            stdin="smoke-test-password\n",
        )
        cli("audit", "verify")
        window = subprocess.Popen(
            [str(program)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        try:
            time.sleep(WINDOW_SECONDS)
            alive = window.poll() is None
        finally:
            window.terminate()
            try:
                output, _ = window.communicate(timeout=20)
            except subprocess.TimeoutExpired:
                window.kill()
                output, _ = window.communicate()
        if not alive or "Traceback" in output:
            raise RuntimeError(f"the window did not stay up cleanly:\n{output[-3000:]}")
    print(f"smoke test passed: {program}")


def package() -> list[Path]:
    stem = f"quarterdeck-{version()}-{sys.platform}-{platform.machine().lower()}"
    made: list[Path] = []
    if sys.platform.startswith("linux"):
        made.append(_tarball(stem))
        if shutil.which("dpkg-deb"):
            made.append(_deb())
    else:
        source = DIST / "Quarterdeck.app" if sys.platform == "darwin" else BUNDLE
        made.append(Path(shutil.make_archive(str(DIST / stem), "zip", source.parent, source.name)))
    for path in made:
        print(f"built {path} ({path.stat().st_size / 1e6:.0f} MB)")
    return made


def _tarball(stem: str) -> Path:
    target = DIST / f"{stem}.tar.gz"
    with tarfile.open(target, "w:gz") as archive:
        archive.add(BUNDLE, arcname="quarterdeck")
    return target


def _deb() -> Path:
    arch = subprocess.run(
        ["dpkg", "--print-architecture"], capture_output=True, text=True, check=True
    ).stdout.strip()
    root = BUILD / "deb"
    shutil.rmtree(root, ignore_errors=True)
    shutil.copytree(BUNDLE, root / "opt" / "quarterdeck", symlinks=True)
    (root / "usr" / "bin").mkdir(parents=True)
    (root / "usr" / "bin" / "quarterdeck").symlink_to("/opt/quarterdeck/quarterdeck")
    apps = root / "usr" / "share" / "applications"
    apps.mkdir(parents=True)
    shutil.copy(ROOT / "resources" / "quarterdeck.desktop", apps / "quarterdeck.desktop")
    icons = root / "usr" / "share" / "icons" / "hicolor"
    (icons / "scalable" / "apps").mkdir(parents=True)
    shutil.copy(ROOT / "resources" / "icons" / "quarterdeck.svg", icons / "scalable" / "apps")
    (icons / "256x256" / "apps").mkdir(parents=True)
    shutil.copy(ICONS / "quarterdeck.png", icons / "256x256" / "apps")
    (root / "DEBIAN").mkdir()
    # The bundle carries Qt's own libraries but not the system's GL and fonts (QT-NOTES).
    (root / "DEBIAN" / "control").write_text(
        f"Package: quarterdeck\nVersion: {version()}\nArchitecture: {arch}\n"
        "Maintainer: Quarterdeck developers <dev@quarterdeck.invalid>\n"
        "Depends: libgl1, libegl1, libfontconfig1, libxkbcommon0, libdbus-1-3\n"
        "Recommends: libxkbcommon-x11-0, libxcb-cursor0, libxcb-icccm4, libxcb-keysyms1, "
        "libxcb-shape0\n"
        "Section: admin\nPriority: optional\n"
        "Description: Quarterdeck operations console\n"
        " Watch hosts live and manage Quarterdeck clusters: the desktop console,\n"
        " the server and the metrics agent in one program.\n"
    )
    target = DIST / f"quarterdeck_{version()}_{arch}.deb"
    subprocess.run(
        ["dpkg-deb", "--root-owner-group", "--build", str(root), str(target)],
        check=True,
        capture_output=True,
    )
    return target


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-package", action="store_true", help="bundle and smoke-test only")
    parser.add_argument("--no-smoke", action="store_true", help="skip the smoke test")
    args = parser.parse_args()
    render_icons()
    program = bundle()
    if not args.no_smoke:
        smoke_test(program)
    if not args.no_package:
        package()
    return 0


if __name__ == "__main__":
    sys.exit(main())

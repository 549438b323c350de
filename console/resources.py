"""Where the data files in `resources/` are, whichever way the program was installed.

The files live in the top-level `resources` package so that setuptools'
package-data ships them in a wheel and an editable install finds them in
the source tree. A PyInstaller bundle unpacks them under `sys._MEIPASS`
(the spec collects `resources` as data), where the package may not be
importable; this module checks there first. Nothing here imports Qt, so the
launcher and tests can use it freely.
"""

from __future__ import annotations

import sys
from functools import cache
from importlib import resources as importlib_resources
from pathlib import Path


@cache
def resource_dir() -> Path:
    """The directory holding `icons/`, `style.qss` and `quarterdeck.desktop`."""
    bundle = getattr(sys, "_MEIPASS", None)
    if bundle is not None:
        frozen = Path(bundle) / "resources"
        if frozen.is_dir():
            return frozen
    try:
        return Path(str(importlib_resources.files("resources")))
    except ModuleNotFoundError:
        # An editable install made before `resources` became a package: the source tree.
        source = Path(__file__).resolve().parent.parent / "resources"
        if source.is_dir():
            return source
        raise


def resource_path(*parts: str) -> Path:
    """A file under `resources/`; `FileNotFoundError` if it is missing, so a typo fails loudly."""
    path = resource_dir().joinpath(*parts)
    if not path.is_file():
        raise FileNotFoundError(f"Quarterdeck resource {'/'.join(parts)} is missing ({path})")
    return path


def icon_path(name: str) -> Path:
    """The SVG file of the icon called `name` (without `.svg`)."""
    return resource_path("icons", f"{name}.svg")

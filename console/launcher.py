"""`quarterdeck`: the desktop console with no arguments, the command line with any.

The backend must not import the console (an import contract), so the
console script points here, not at `backend.cli`. Qt is imported only when
the window is really wanted: `quarterdeck serve` and `quarterdeck agent`
run on servers without a display or Qt's system libraries.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args:
        from backend.cli import main as cli_main  # noqa: PLC0415

        return cli_main(args)
    from console.app import run  # noqa: PLC0415 - Qt only for the window

    return run()


if __name__ == "__main__":
    sys.exit(main())

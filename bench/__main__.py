"""`python -m bench SCENARIO [options]`: ingest, query, or another bench module.

`ingest` and `query` (bench.metrics) take `--backend sqlite|postgres|both`;
`ingest --http` pushes through a real server instead (bench.http_ingest).
Any other scenario names a module of this package with a `main(argv)`
(`python -m bench agent` runs bench.agent), which parses its own options.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import sys

from bench.metrics import BACKENDS, SCENARIOS

OTHER_SCENARIOS = ("agent", "api", "chart", "fanout", "startup")


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["ingest"] and "--http" in args:
        # Through a real server's POST /api/v1/metrics rather than the service.
        from bench import http_ingest

        return int(http_ingest.main([arg for arg in args[1:] if arg != "--http"]) or 0)
    if args and args[0] in OTHER_SCENARIOS:
        module = importlib.import_module(f"bench.{args[0]}")
        return int(module.main(args[1:]) or 0)
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("scenario", choices=sorted(SCENARIOS))
    parser.add_argument("--backend", choices=[*BACKENDS, "both"], default="both")
    options = parser.parse_args(args)
    backends = list(BACKENDS) if options.backend == "both" else [options.backend]
    # A selector loop everywhere, as in the product: psycopg refuses the proactor loop.
    with asyncio.Runner(loop_factory=asyncio.SelectorEventLoop) as runner:
        runner.run(SCENARIOS[options.scenario](backends))
    return 0


if __name__ == "__main__":
    sys.exit(main())

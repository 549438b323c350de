"""`python -m bench ingest|query [--backend sqlite|postgres|both]`."""

from __future__ import annotations

import argparse
import asyncio

from bench.metrics import BACKENDS, SCENARIOS


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("scenario", choices=sorted(SCENARIOS))
    parser.add_argument("--backend", choices=[*BACKENDS, "both"], default="both")
    args = parser.parse_args(argv)
    backends = list(BACKENDS) if args.backend == "both" else [args.backend]
    # A selector loop everywhere, as in the product: psycopg refuses the proactor loop.
    with asyncio.Runner(loop_factory=asyncio.SelectorEventLoop) as runner:
        runner.run(SCENARIOS[args.scenario](backends))


if __name__ == "__main__":
    main()

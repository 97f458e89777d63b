"""``strata``: the command line. Each subcommand lives in ``strata/commands/<name>.py``.

A command module exposes ``register(subparsers)``; it adds its parser and sets ``func``,
which takes the parsed args and returns the exit status.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from strata import __version__

#: Command modules, in the order ``strata --help`` lists them.
COMMANDS = ("generate", "ingest", "transform", "check", "query", "serve", "docs", "demo")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="strata", description="Strata: event ingestion, transformation and serving.")
    parser.add_argument("--version", action="version", version=f"strata {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        importlib.import_module(f"strata.commands.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and args.command != "ingest":
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.beam_args = extra  # `ingest` passes unknown --flags through to Beam (e.g. Dataflow's)
    return int(args.func(args) or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

"""``strata``: the command line. Each subcommand lives in ``strata/commands/<name>.py``.

A command module exposes ``register(subparsers)``; it adds its parser and sets ``func``,
which takes the parsed args and returns the exit status.

Every parser, whoever registers it, is a :class:`StrictParser`: an unknown flag or a stray
argument exits with status 2 and names the nearest valid flag (``--dry_run`` → ``--dry-run``).
Abbreviated flags are refused too, so a flag added later never changes what an old command
line means.

Options for another tool are passed deliberately, after a bare ``--``. A command that accepts
them declares ``p.set_defaults(beam_options=True)`` and finds them in ``args.beam_args``, e.g.
``strata ingest batch --input 'gs://b/*.ndjson' --runner DataflowRunner -- --project P
--region europe-west1``. For every other command ``--`` keeps its usual meaning (the end of the
flags), and ``args.beam_args`` is empty.
"""

from __future__ import annotations

import argparse
import difflib
import importlib
import sys

from strata import __version__

#: Command modules, in the order ``strata --help`` lists them.
COMMANDS = ("generate", "ingest", "transform", "check", "query", "lake", "serve", "token", "docs", "demo",
            "collect", "write_key", "publish", "replay", "bq", "launch", "data_version", "freshness")


def _subparsers(parser: argparse.ArgumentParser) -> argparse._SubParsersAction | None:
    return next((a for a in parser._actions if isinstance(a, argparse._SubParsersAction)), None)


def nearest_flag(parser: argparse.ArgumentParser, typed: str) -> str | None:
    """The flag of ``parser`` closest to ``typed`` (``--input_format=x`` → ``--format``), or None."""
    name = typed.split("=", 1)[0]
    flags = [s for a in parser._actions for s in a.option_strings if s.startswith("--")]
    dashed = name.replace("_", "-")
    if dashed in flags:
        return dashed
    # A typo first; then a Beam-style long name ending in a flag (--input-format → --format).
    close = (difflib.get_close_matches(dashed, flags, n=1, cutoff=0.85)
             or [f for f in flags if dashed.endswith("-" + f[2:])]
             or difflib.get_close_matches(dashed, flags, n=1, cutoff=0.6))
    return close[0] if close else None


class StrictParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` that refuses what it does not know, with a suggestion; its
    subparsers are of the same class (argparse's default), so every subcommand is strict."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def parse_known_args(self, args=None, namespace=None):
        if args is not None and _subparsers(self) is None:
            # A command's own unknown flag first: "--sourc" should be named (with --source as the
            # suggestion), not reported as a missing --source.
            for token in args:
                if token == "--":
                    break
                if token.startswith("--") and token.split("=", 1)[0] not in self._option_string_actions:
                    self.error(self._unknown([token]))
        namespace, extra = super().parse_known_args(args, namespace)
        if extra:
            self.error(self._unknown(extra))
        return namespace, extra

    def _unknown(self, extra: list[str]) -> str:
        first = extra[0]
        if not first.startswith("-"):
            return f"unexpected argument {first!r} (see `{self.prog} --help`)"
        message = f"unknown flag {first.split('=', 1)[0]}"
        suggestion = nearest_flag(self, first)
        if suggestion:
            message += f"; did you mean {suggestion}?"
        if self.get_default("beam_options"):
            message += " (Beam/Dataflow pipeline options go after a bare `--`)"
        return message


def build_parser() -> argparse.ArgumentParser:
    parser = StrictParser(
        prog="strata", description="Strata: event ingestion, transformation and serving.")
    parser.add_argument("--version", action="version", version=f"strata {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        importlib.import_module(f"strata.commands.{name}").register(sub)
    return parser


def _command_parser(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.ArgumentParser:
    """The (sub)parser the command words of ``argv`` select (``ingest batch`` → its parser)."""
    for token in argv:
        action = _subparsers(parser)
        if action is None or token not in action.choices:
            if token.startswith("-"):
                continue
            break
        parser = action.choices[token]
    return parser


def main(argv: list[str] | None = None) -> int:
    from strata_core import paths

    paths.private_files()
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    forwarded: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        if _command_parser(parser, argv[:cut]).get_default("beam_options"):
            argv, forwarded = argv[:cut], argv[cut + 1:]
    args = parser.parse_args(argv)
    args.beam_args = forwarded
    return int(args.func(args) or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

"""``strata write-key create NAME``: a new collector write key, printed once; only its hash is kept."""

from __future__ import annotations

import pathlib
import sys


def register(sub) -> None:
    p = sub.add_parser("write-key", help="manage the collector's write keys")
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    c = actions.add_parser("create", help="create a key: printed once, only its SHA-256 is stored",
                           description="Create a write key for sources that POST to the collector. "
                           "The key is printed once; the key file ($STRATA_HOME/write_keys.json, mode "
                           "0600) keeps only its SHA-256.")
    c.add_argument("name", help="a name for the source, e.g. web or ios (1-64 letters, digits, _ . -)")
    c.add_argument("--file", type=pathlib.Path, help="key file (default $STRATA_HOME/write_keys.json)")
    c.set_defaults(func=create)


def create(args) -> int:
    from strata_core import writekeys

    path = args.file or writekeys.default_path()
    try:
        key = writekeys.create(args.name, path)
    except ValueError as exc:
        print(f"strata write-key create: {exc}", file=sys.stderr)
        return 2
    print(key)
    print(f"write key {args.name!r} created; its hash is in {path}. The key is shown only now.",
          file=sys.stderr)
    return 0

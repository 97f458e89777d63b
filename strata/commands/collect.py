"""``strata collect --topic projects/P/topics/T``: the collector (same code as ``python -m collector``)."""

from __future__ import annotations

import os


def register(sub) -> None:
    from collector.server import add_arguments

    p = sub.add_parser("collect", help="run the HTTP event collector (POST /v1/events → Pub/Sub)",
                       description="Serve POST /v1/events (one event or {\"batch\": [...]}, at most 500 "
                       "events / 5 MiB; write key as Bearer token or Basic user), /healthz and /readyz.")
    add_arguments(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from strata_core import paths

    if os.environ.get("PUBSUB_EMULATOR_HOST"):
        paths.use_offline_env()
    from collector.server import serve

    return serve(args)

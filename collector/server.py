"""Run the collector under uvicorn (uvloop + httptools): ``python -m collector`` and ``strata collect``."""

from __future__ import annotations

import argparse
import logging
import pathlib
import socket
import sys

#: Connections beyond this get uvicorn's 503 before any app code runs.
MAX_CONNECTIONS = 2000


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--topic", required=True, help="Pub/Sub topic, projects/PROJECT/topics/NAME")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8088, help="port (default 8088; 0 picks a free one)")
    parser.add_argument("--write-keys", type=pathlib.Path, default=None,
                        help="write-key hash file (default $STRATA_HOME/write_keys.json)")
    parser.add_argument("--publish-timeout-s", type=float, default=5.0,
                        help="answer 503 when Pub/Sub has not acknowledged within this time (default 5)")
    parser.add_argument("--access-log", action="store_true", help="log every request (off: it costs CPU)")


def serve(args: argparse.Namespace) -> int:
    from strata_core import pubsub, writekeys

    try:
        pubsub.check_topic(args.topic)
    except ValueError as exc:
        print(f"collector: {exc}", file=sys.stderr)
        return 2
    import uvicorn

    from collector.app import Collector  # here, so `strata --help` needs no msgspec (transform image)

    keys_path = args.write_keys or writekeys.default_path()
    app = Collector(args.topic, keys_path, publish_timeout_s=args.publish_timeout_s)
    # Bind the socket ourselves: --port 0 then gets a free port with no race, and we can print it.
    sock = socket.socket(socket.AF_INET6 if ":" in args.host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((args.host, args.port))
    host, port = sock.getsockname()[:2]
    config = uvicorn.Config(app, loop="uvloop", http="httptools", lifespan="on", access_log=args.access_log,
                            log_level="warning", limit_concurrency=MAX_CONNECTIONS, timeout_keep_alive=30,
                            timeout_graceful_shutdown=10)
    logging.basicConfig(level=logging.WARNING, format="collector %(levelname)s %(message)s")
    banner = f"collector listening on http://{host}:{port} → {args.topic} (write keys: {keys_path})"

    class Server(uvicorn.Server):
        async def startup(self, sockets=None):
            await super().startup(sockets)
            print(banner, flush=True)  # only once the socket accepts: callers wait for this line

    Server(config).run(sockets=[sock])
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m collector", description="The Strata event collector.")
    add_arguments(parser)
    return serve(parser.parse_args(argv))

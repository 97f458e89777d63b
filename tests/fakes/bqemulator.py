"""bqemulator (a DuckDB-backed BigQuery stand-in) on 127.0.0.1, for the conformance tier.

bqemulator pins packages of its own, so it lives in its own venv (``make bqemulator`` builds
``.venv-bqemulator`` from ``requirements-bqemulator.txt``; ``make test`` exports
``STRATA_BQEMULATOR_PYTHON``). Without it a test skips locally and fails in CI
(``need_service``).

Offline, the launcher disables DuckDB's extension downloads (bqemulator would fetch
``spatial`` and ``avro``). Load jobs read ``gs://bucket/path`` from
``$BQEMU_GCS_LOCAL_ROOT/bucket/path``: pointed at the on-disk store of the GCS emulator
(``tests/fakes/gcs.py``), a Beam job writes load files through the Cloud Storage API and
bqemulator's load job reads the same bytes, as BigQuery reads Cloud Storage.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import socket
import subprocess
import textwrap
import time
from typing import Iterator

PROJECT = "strata-local"

LAUNCHER = textwrap.dedent('''
    import sys
    import duckdb
    _connect = duckdb.connect
    def connect(database=":memory:", read_only=False, config=None, **kw):
        config = dict(config or {})
        config.update(autoinstall_known_extensions=False, autoload_known_extensions=False,
                      allow_community_extensions=False)
        return _connect(database, read_only=read_only, config=config, **kw)
    duckdb.connect = connect
    from bqemulator.storage import engine
    engine.DuckDBEngine._load_spatial = lambda self: None           # would download `spatial`
    engine.DuckDBEngine._load_format_extensions = lambda self: None  # would download `avro`
    from bqemulator.cli import main
    sys.argv = ["bqemulator", "start", *sys.argv[1:]]
    main()
''')


def python() -> str | None:
    """The bqemulator venv's Python, or None when it has not been built."""
    path = os.environ.get("STRATA_BQEMULATOR_PYTHON")
    return path if path and pathlib.Path(path).exists() else None


def require() -> str:
    from conftest import need_service

    need_service(python() is not None,
                 "bqemulator not available: run `make bqemulator` (CI does) or set STRATA_BQEMULATOR_PYTHON "
                 "to a Python with bqemulator 1.4")
    return python()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def running(work: pathlib.Path, gcs_root: pathlib.Path | None = None) -> Iterator[str]:
    """Start bqemulator; yields its REST endpoint ``http://127.0.0.1:PORT``; stops it after."""
    exe = require()
    work.mkdir(parents=True, exist_ok=True)
    (work / "launch.py").write_text(LAUNCHER)
    rest, grpc = _free_port(), _free_port()
    env = dict(os.environ)
    if gcs_root is not None:
        env["BQEMU_GCS_LOCAL_ROOT"] = str(gcs_root)
    log = open(work / "log", "w")
    proc = subprocess.Popen([exe, str(work / "launch.py"), "--rest-host", "127.0.0.1", "--rest-port", str(rest),
                             "--grpc-host", "127.0.0.1", "--grpc-port", str(grpc), "--project", PROJECT,
                             "--log-level", "warning"], stdout=subprocess.DEVNULL, stderr=log, env=env)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", rest), timeout=0.5).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"bqemulator did not start: {(work / 'log').read_text()[-2000:]}")
                time.sleep(0.3)
        yield f"http://127.0.0.1:{rest}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()

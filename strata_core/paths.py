"""Where local state lives, and how local mode keeps Google clients off the network.

All local state (warehouse, Parquet lake, dead letters, emulator data, Django's SQLite) lives
under one directory, ``$STRATA_HOME`` (default ``./.strata``). Two homes never share a file.
"""

from __future__ import annotations

import os
import pathlib

#: Set before any Google client is imported: google-auth must never probe the metadata server
#: (169.254.169.254) and dbt must not send usage statistics. See shared/ENVIRONMENT.md.
OFFLINE_ENV = {
    "NO_GCE_CHECK": "true",
    "GCE_METADATA_HOST": "127.0.0.1:9",
    "GCE_METADATA_IP": "127.0.0.1:9",
    "GCE_METADATA_ROOT": "127.0.0.1:9",
    "DBT_SEND_ANONYMOUS_USAGE_STATS": "False",
    "DO_NOT_TRACK": "1",
}


def use_offline_env() -> None:
    """Make local mode safe: no metadata-server probe, no telemetry. Idempotent."""
    for key, value in OFFLINE_ENV.items():
        os.environ[key] = value


def home() -> pathlib.Path:
    """``$STRATA_HOME`` as an absolute path (created on first use)."""
    path = pathlib.Path(os.environ.get("STRATA_HOME", ".strata")).expanduser().resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


def lake_dir() -> pathlib.Path:
    """Root of the local Parquet lake: ``<home>/lake/<schema>/<table>/...``."""
    return home() / "lake"


def warehouse_path() -> pathlib.Path:
    """The DuckDB file readers open (the API, ``strata query``, dbt's published output)."""
    return home() / "warehouse.duckdb"

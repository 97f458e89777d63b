"""Where local state lives, and how local mode keeps Google clients off the network.

All local state (warehouse, Parquet lake, dead letters, emulator data, Django's SQLite) lives
under one directory, the *home*. Two homes never share a file.

One rule finds it, whatever the current directory: ``$STRATA_HOME`` when set, else ``.strata``
at the root of the Strata checkout the code runs from (the directory holding ``strata_core/``;
``make``, ``.venv/bin/strata`` and ``graphql_site/manage.py`` therefore all agree). An installed
copy outside a checkout (the container images) sets ``STRATA_HOME``.

The home is private to its owner: created ``0700``, and :func:`private_files` makes every file
the process (and its children: dbt, gunicorn, Beam workers) creates ``0600``.
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


#: The checkout root: the default home is ``<root>/.strata``.
ROOT = pathlib.Path(__file__).resolve().parent.parent


def home_path() -> pathlib.Path:
    """Where the home is (absolute), without creating it. See the module docstring for the rule."""
    configured = os.environ.get("STRATA_HOME")
    return pathlib.Path(configured).expanduser().resolve() if configured else ROOT / ".strata"


def home() -> pathlib.Path:
    """The home as an absolute path, created (``0700``) on first use."""
    path = home_path()
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path


def private_files() -> None:
    """From now on, files and directories this process or its children create are private
    (umask ``077``: ``0600`` files, ``0700`` directories). The umask is inherited across
    ``fork``/``exec``, so it covers dbt, gunicorn and Beam's worker processes too."""
    os.umask(0o077)


def lake_dir() -> pathlib.Path:
    """Root of the local Parquet lake: ``<home>/lake/<schema>/<table>/...``."""
    return home() / "lake"


def warehouse_path() -> pathlib.Path:
    """The DuckDB file readers open (the API, ``strata query``, dbt's published output)."""
    return home() / "warehouse.duckdb"

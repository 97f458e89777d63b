"""DuckDB settings for every connection that only reads the warehouse (``strata query``, the API).

Read-only and offline through DuckDB's own configuration, not a statement blacklist:

* ``enable_external_access = false``: no file outside the database itself is read or written
  (``COPY ... TO``, ``read_parquet('/elsewhere')``, ``ATTACH``, ``INSTALL``, ``httpfs``), and
  nothing is fetched from the network;
* ``autoinstall_known_extensions`` / ``autoload_known_extensions`` off: a statement can never
  make DuckDB download or load an extension;
* ``allowed_directories``: the lake directory, when given, is the one place files may still be
  read from (the ``raw.*`` views read Parquet there), so the views keep working;
* ``lock_configuration = true``: once set, none of the above can be changed by a ``SET``.

Pass the dict as ``duckdb.connect(path, read_only=True, config=read_only_config(...))``.
"""

from __future__ import annotations

import pathlib


def read_only_config(*, allowed_directories: list[pathlib.Path] | tuple = (), threads: int | None = None,
                     memory_limit: str | None = None) -> dict:
    """The connection configuration of a read-only, offline warehouse reader.

    ``allowed_directories`` is empty for readers that only query the database's own tables
    (the API reads the marts); give the lake for readers of the ``raw`` views.
    """
    config: dict = {
        "enable_external_access": False,
        "autoinstall_known_extensions": False,
        "autoload_known_extensions": False,
    }
    if allowed_directories:
        config["allowed_directories"] = [str(pathlib.Path(d)) + "/" for d in allowed_directories]
    if threads:
        config["threads"] = threads
    if memory_limit:
        config["memory_limit"] = memory_limit
    # Last, so that everything above is in force and fixed.
    config["lock_configuration"] = True
    return config

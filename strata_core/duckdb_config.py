"""DuckDB settings for every connection that only reads the warehouse (``strata query``, the API).

Read-only and offline through DuckDB's own configuration, not a statement blacklist:

* ``enable_external_access = false``: no file outside the database itself is read or written
  (``COPY ... TO``, ``read_csv('/elsewhere')``, ``ATTACH``, ``INSTALL``), and nothing is fetched
  from the network;
* ``autoinstall_known_extensions`` / ``autoload_known_extensions`` off: no statement makes DuckDB
  download or load an extension;
* ``lock_configuration = true``, set last: none of the above can be changed by a ``SET``.

Two ways in:

* :func:`read_only_config` is the ``config`` dict for ``duckdb.connect(path, read_only=True,
  config=...)`` (or SQLAlchemy's ``connect_args``): for readers of the database's own tables (the
  API reads only the marts).
* :func:`connect_read_only` also takes ``allowed_directories`` (the lake, for the ``raw.*`` views
  over Parquet). DuckDB accepts that setting only once the database runs, so it is set first,
  then external access is turned off and the configuration locked. Note that DuckDB lets a
  statement *write* under an allowed directory too (``COPY ... TO '<lake>/x.parquet'`` works), so
  a reader that must never write the lake has to refuse such statements itself.
"""

from __future__ import annotations

import pathlib

_OFFLINE = {"autoinstall_known_extensions": False, "autoload_known_extensions": False}


def read_only_config(*, threads: int | None = None, memory_limit: str | None = None) -> dict:
    """The ``config`` of a read-only, offline warehouse reader that reads no external file."""
    config: dict = {"enable_external_access": False, **_OFFLINE}
    if threads:
        config["threads"] = threads
    if memory_limit:
        config["memory_limit"] = memory_limit
    config["lock_configuration"] = True  # last: everything above is in force and fixed
    return config


def connect_read_only(path: pathlib.Path | str, *, allowed_directories: list | tuple = (),
                      threads: int | None = None, memory_limit: str | None = None):
    """A read-only, offline DuckDB connection to ``path``, reading files only under
    ``allowed_directories`` (none by default)."""
    import duckdb

    if not allowed_directories:
        return duckdb.connect(str(path), read_only=True,
                              config=read_only_config(threads=threads, memory_limit=memory_limit))
    config = dict(_OFFLINE)
    if threads:
        config["threads"] = threads
    if memory_limit:
        config["memory_limit"] = memory_limit
    con = duckdb.connect(str(path), read_only=True, config=config)
    try:
        directories = [str(pathlib.Path(d).resolve()).rstrip("/") + "/" for d in allowed_directories]
        con.execute("SET allowed_directories = $dirs", {"dirs": directories})
        con.execute("SET enable_external_access = false")
        con.execute("SET lock_configuration = true")
    except Exception:
        con.close()
        raise
    return con

"""How every reader opens the local DuckDB warehouse: read-only, offline, and wherever the home is.

One place for the rule, shared by ``strata query`` (``strata.warehouse``) and the API's
connections (``graphql_site.querylayer.engine``).

**Read-only and offline through DuckDB's own settings**, not by inspecting SQL:

* the database file is opened ``read_only`` (no table, view or schema can change);
* ``enable_external_access = false``: no network (no ``httpfs``, no ``https://`` reads), no
  file outside the lake, no ``ATTACH`` of another database, no ``COPY … TO`` outside the lake;
* ``allowed_directories = [<home>/lake/]``: the one directory the ``raw.*`` views read;
* ``autoinstall_known_extensions`` / ``autoload_known_extensions`` off, community and unsigned
  extensions refused: a query can never make DuckDB download or load code;
* ``lock_configuration = true``: none of the above can be ``SET`` back by a query.

DuckDB's allow-list grants writes as well as reads inside an allowed directory (measured on
duckdb 2.0.1: ``COPY (…) TO '<lake>/raw/events/x.parquet'`` succeeds). A caller that runs SQL
typed by a user therefore also checks the statement *type* with DuckDB's own parser
(:func:`refuse_writes`): only statements that read (``SELECT``, ``EXPLAIN``, ``PRAGMA``,
``CALL``) run. The API runs only statements it built itself, so the settings are enough there.

**A home you can move.** The ``raw.*`` views store no absolute path: they read
``getvariable('strata_lake')`` (set per connection to ``<home>/lake`` by :func:`secure`), or
``./lake`` when the variable is unset, so ``cd $STRATA_HOME && duckdb warehouse.duckdb`` works too.
A copied home reads its own lake, and a moved home keeps working.
"""

from __future__ import annotations

import pathlib

#: The DuckDB variable the raw views read the lake's location from (one value per connection).
LAKE_VARIABLE = "strata_lake"

#: Statement types that only read (DuckDB's ``StatementType`` names).
READ_STATEMENTS = frozenset({"SELECT", "EXPLAIN", "PRAGMA", "CALL"})

#: What a refused write says, wherever it is refused.
READ_ONLY_HINT = ("the warehouse is read-only here: `strata ingest` writes raw.*, "
                  "`strata transform` writes staging, curated and mart")


def scan_sql(table: str, schema: str = "raw", *, filename: bool = False) -> str:
    """``read_parquet(...)`` over the Parquet parts of ``<schema>.<table>`` in this connection's
    lake (``schema``: ``raw``, or ``monitoring`` for the recorded run facts).

    ``schema`` and ``table`` come from the lake's declarations (``strata_core.lake.SCHEMAS``),
    never from user input. hive_partitioning is off because every part also stores its partition
    column, which keeps types exact.
    """
    glob = f"coalesce(getvariable('{LAKE_VARIABLE}'), 'lake') || '/{schema}/{table}/**/*.parquet'"
    return (f"read_parquet({glob}, hive_partitioning = false, union_by_name = true"
            f"{', filename = true' if filename else ''})")


def view_sql(table: str, schema: str = "raw") -> str:
    """``create view`` statement for ``<schema>.<table>`` over the lake (see :func:`scan_sql`)."""
    return f"create or replace view {schema}.{table} as select * from {scan_sql(table, schema)}"


def read_only_config(*, threads: int | None = None, memory_limit: str | None = None) -> dict:
    """Settings for ``duckdb.connect(path, read_only=True, config=read_only_config())``.

    Only what DuckDB accepts before the database starts; :func:`secure` does the rest. One
    process must open a database file with one config, so every reader uses this function.
    """
    config: dict = {
        "autoinstall_known_extensions": False,
        "autoload_known_extensions": False,
        "allow_community_extensions": False,
        "allow_unsigned_extensions": False,
    }
    if threads:
        config["threads"] = threads
    if memory_limit:
        config["memory_limit"] = memory_limit
    return config


def point_at_lake(con, lake: pathlib.Path) -> None:
    """Make this connection's ``raw.*`` views read ``lake`` (a bound value: any path works)."""
    con.execute(f"set variable {LAKE_VARIABLE} = $1", [str(lake)])


def secure(con, lake: pathlib.Path, *, profiling: bool = False) -> None:
    """Point ``con`` at ``lake``, then allow reading only the lake and lock the configuration.

    Call it on every new connection opened with :func:`read_only_config`. The settings are
    global to the DuckDB database instance, which every connection to the same path in one
    process shares: the first connection locks them, later ones only set their variable.

    ``profiling``: also switch on DuckDB's profiler for this connection (the API's cost history
    reads it, ``graphql_site.monitoring.costs``). The profiler is a per-connection setting, and a
    locked configuration refuses it on every later connection, so such readers are not locked.
    They stay read-only and offline all the same: with external access off DuckDB refuses to
    turn it back on, to change the allowed directories, to allow unsigned or community
    extensions, or to install any ("while the database is running"); the one setting left
    changeable, extension autoinstalling, cannot fetch anything without external access.
    Readers of user-typed SQL (``strata query``) never profile, so they are locked.
    """
    point_at_lake(con, lake)
    if profiling:
        con.execute("set enable_profiling = 'no_output'")
    if con.execute("select current_setting('enable_external_access')").fetchone()[0] in (False, "false"):
        return  # another connection to this database already secured it
    con.execute("set allowed_directories = $1", [[str(lake).rstrip("/") + "/"]])
    con.execute("set enable_external_access = false")
    if not profiling:
        con.execute("set lock_configuration = true")


def connect_read_only(path: pathlib.Path | str, lake: pathlib.Path, *, threads: int | None = None,
                      memory_limit: str | None = None):
    """A read-only, offline connection to the DuckDB file ``path`` whose ``raw.*`` views read ``lake``."""
    import duckdb

    con = duckdb.connect(str(path), read_only=True,
                         config=read_only_config(threads=threads, memory_limit=memory_limit))
    try:
        secure(con, lake)
    except BaseException:
        con.close()
        raise
    return con


def refuse_writes(con, sql: str) -> list:
    """DuckDB's own parse of ``sql``: its statements, or ``PermissionError`` if one would write.

    The message names the statement and says which command writes the warehouse.
    """
    statements = con.extract_statements(sql)
    for statement in statements:
        kind = str(statement.type).rsplit(".", 1)[-1]
        if kind not in READ_STATEMENTS:
            raise PermissionError(f"{kind} refused: {READ_ONLY_HINT}")
    return statements

"""A dbt-duckdb plugin that points every dbt connection's ``raw.*`` views at the home's lake.

The raw views store no path (``strata_core.duckdb_config``): each connection says where the
lake is. dbt-duckdb opens one connection and a cursor per thread, and calls this plugin on
each of them; ``transforms_sql/profiles.yml`` lists it.
"""

from __future__ import annotations

from dbt.adapters.duckdb.plugins import BasePlugin

from strata_core import duckdb_config, paths


class Plugin(BasePlugin):
    def initialize(self, plugin_config: dict) -> None:
        self.lake = paths.home_path() / "lake"

    def configure_connection(self, conn) -> None:
        duckdb_config.point_at_lake(conn, self.lake)

    def configure_cursor(self, cursor):
        duckdb_config.point_at_lake(cursor, self.lake)
        return cursor

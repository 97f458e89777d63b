"""``strata_core.duckdb_config``: the read-only, offline DuckDB settings shared by the API and
``strata query`` (issue 12, section 1)."""

from __future__ import annotations

import duckdb
import pytest

from strata_core.duckdb_config import connect_read_only


@pytest.fixture
def warehouse(tmp_path):
    (tmp_path / "lake").mkdir()
    (tmp_path / "elsewhere").mkdir()
    con = duckdb.connect()
    con.execute(f"copy (select 1 as x) to '{tmp_path}/lake/a.parquet'")
    con.execute(f"copy (select 2 as x) to '{tmp_path}/elsewhere/b.parquet'")
    con.close()
    path = tmp_path / "warehouse.duckdb"
    con = duckdb.connect(str(path))
    con.execute(f"create view lake_view as select * from read_parquet('{tmp_path}/lake/*.parquet')")
    con.execute("create table t as select 42 as answer")
    con.close()
    return path


REFUSED = ["INSTALL httpfs", "LOAD httpfs", "SET enable_external_access = true", "SET lock_configuration = false",
           "SET autoload_known_extensions = true", "CREATE TABLE planted AS SELECT 1"]


@pytest.mark.parametrize("statement", REFUSED + ["SELECT * FROM read_parquet('{tmp}/elsewhere/*.parquet')",
                                                 "COPY t TO '{tmp}/elsewhere/out.csv'", "COPY t TO '{tmp}/out.csv'",
                                                 "ATTACH '{tmp}/other.duckdb'"])
def test_readers_read_the_database_and_the_lake_and_nothing_else(warehouse, statement):
    con = connect_read_only(warehouse, warehouse.parent / "lake", threads=1, memory_limit="256MB")
    try:
        assert con.execute("select answer from t").fetchall() == [(42,)]
        assert con.execute("select * from lake_view").fetchall() == [(1,)]
        with pytest.raises(duckdb.Error):
            con.execute(statement.format(tmp=warehouse.parent))
        assert not (warehouse.parent / "elsewhere" / "out.csv").exists()
        assert not (warehouse.parent / "out.csv").exists()
    finally:
        con.close()

"""What queries cost: BigQuery list prices, job labels, and a BigQuery-like estimate for DuckDB.

BigQuery on-demand bills the *logical* bytes of every column a query references, in the
partitions (and clustered blocks) it cannot prune. The local estimate mirrors that: DuckDB's
profiler reports, for each table scan, the rows it read after pruning row groups by their
min/max (``rows_scanned``), the columns it projected and the filters it pushed down; the
estimate is ``rows_scanned x`` the BigQuery logical width of those columns
(https://cloud.google.com/bigquery/pricing#data_size_calculation: 8 bytes for INT64, FLOAT64,
DATE and TIMESTAMP, 16 for NUMERIC, 1 for BOOL, 2 + the UTF-8 length for STRING and JSON).

DuckDB prunes by row group (122,880 rows) where BigQuery prunes by day partition, so on small
tables (a few row groups) the estimate is an upper bound; on tables much larger than a day of
row groups the two converge. On Parquet (the raw tables' lake) DuckDB reports the rows its
filters kept: for a filter on the partition column that is the partition's rows, as BigQuery
bills; for other filters (``received_at > ...``) the estimate is low.
"""

from __future__ import annotations

import dataclasses
import os
import re
from typing import Callable, Iterable

#: On-demand list price per TiB scanned (US and EU multi-regions, since 2023-07-05).
PRICE_PER_TIB_USD = float(os.environ.get("STRATA_BQ_PRICE_PER_TIB_USD", "6.25"))
#: Editions (Standard, pay as you go) list price per slot-hour, for slot-based billing.
PRICE_PER_SLOT_HOUR_USD = float(os.environ.get("STRATA_BQ_PRICE_PER_SLOT_HOUR_USD", "0.04"))
TIB = 1024 ** 4

#: BigQuery logical bytes per value of fixed-width types; strings add their length to 2.
_FIXED_WIDTHS = (
    (re.compile(r"^(BOOL|BOOLEAN)$"), 1.0),
    (re.compile(r"^(TINYINT|SMALLINT|INTEGER|INT|BIGINT|UTINYINT|USMALLINT|UINTEGER|UBIGINT|"
                r"DOUBLE|FLOAT|REAL|DATE|TIME|TIMESTAMP.*|INTERVAL)$"), 8.0),
    (re.compile(r"^(HUGEINT|UHUGEINT|DECIMAL.*|UUID)$"), 16.0),
)
_STRING_RE = re.compile(r"^(VARCHAR|JSON|BLOB|BIT)$")
#: Width assumed for a string column whose length was not sampled.
DEFAULT_STRING_BYTES = 2.0 + 16.0


def format_bytes(n_bytes: float | None) -> str:
    """Decimal units, as BigQuery's console shows them: ``1.5 GB``."""
    n = float(n_bytes or 0)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1000


def usd_for_bytes(n_bytes: float) -> float:
    return n_bytes / TIB * PRICE_PER_TIB_USD


def usd_for_slot_ms(slot_ms: float) -> float:
    return slot_ms / 3_600_000 * PRICE_PER_SLOT_HOUR_USD


def logical_width(duckdb_type: str, sampled_bytes: float | None = None) -> float:
    """BigQuery logical bytes per value of a column with this DuckDB type; for strings,
    ``sampled_bytes`` is the measured mean of 2 + UTF-8 length (0 for nulls, as BigQuery bills)."""
    t = duckdb_type.upper()
    for pattern, width in _FIXED_WIDTHS:
        if pattern.match(t):
            return width
    if _STRING_RE.match(t):
        return sampled_bytes if sampled_bytes is not None else DEFAULT_STRING_BYTES
    return 8.0  # nested and other types: rare here; a fixed guess keeps the estimate defined


@dataclasses.dataclass(frozen=True)
class Scan:
    """One table scan of a query: which relation, how many rows read, which columns."""

    table: str  # bare table name (no catalog / schema): model and raw names are unique
    rows: int
    columns: tuple[str, ...]
    filter_text: str = ""


_LAKE_RE = re.compile(r"/lake/(?:raw|monitoring)/([A-Za-z0-9_]+)/")
_IDENT_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _as_list(value) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else [str(v) for v in value]


def _table_name(extra: dict) -> str | None:
    if extra.get("Table"):
        name = str(extra["Table"]).split(".")[-1]
        # dbt-duckdb's intermediate relations read like the model they become.
        return re.sub(r"__dbt_(tmp|backup)$", "", name)
    files = " ".join(_as_list(extra.get("Filename(s)")))
    match = _LAKE_RE.search(files)
    return match.group(1) if match else None


def scans_from_profile(profile: dict) -> list[Scan]:
    """The table scans in a DuckDB JSON profile (``get_profiling_information(format="json")``)."""
    found: list[Scan] = []

    def walk(op: dict) -> None:
        if op.get("type") == "TABLE_SCAN" or "rows_scanned" in op:
            extra = op.get("extra_info") or {}
            table = _table_name(extra)
            if table is not None:
                columns = [c for c in _as_list(extra.get("Projections")) if not c.startswith("#")]
                found.append(Scan(table, int(op.get("rows_scanned") or op.get("operator_cardinality") or 0),
                                  tuple(columns), " ".join(_as_list(extra.get("Filters")))))
        for child in op.get("children") or []:
            walk(child)

    for op in profile.get("operator") or profile.get("children") or []:
        walk(op)
    return found


def scan_bytes(scans: Iterable[Scan], widths: Callable[[str], dict[str, float]]) -> int:
    """BigQuery-like logical bytes of ``scans``.

    ``widths(table)`` maps the table's column names to bytes per value (see
    :func:`logical_width`); columns a scan only filters on count too, as on BigQuery.
    """
    total = 0.0
    for scan in scans:
        table_widths = widths(scan.table)
        if not table_widths:
            continue
        columns = set(scan.columns)
        columns.update(w for w in _IDENT_RE.findall(scan.filter_text) if w in table_widths)
        total += scan.rows * sum(table_widths.get(c, DEFAULT_STRING_BYTES) for c in columns)
    return int(total)


#: Catalogue of the column types, and a sample of string lengths, for :func:`scan_bytes`.
COLUMN_TYPES_SQL = ("select schema_name, table_name, column_name, data_type from duckdb_columns() "
                    "where table_name = ? and schema_name not in ('information_schema', 'pg_catalog') "
                    "order by schema_name = 'main', schema_name")


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def duckdb_widths(execute: Callable[[str, list], list], table: str, sample_rows: int = 2048) -> dict[str, float]:
    """Bytes per value of each column of ``table``, on a DuckDB connection.

    ``execute(sql, params)`` returns rows. String lengths come from a ``sample_rows`` sample.
    Identifiers in the sampling statement come from DuckDB's own catalogue, never from input.
    """
    rows = execute(COLUMN_TYPES_SQL, [table])
    if not rows:
        return {}
    schema = rows[0][0]
    columns = [(r[2], r[3]) for r in rows if r[0] == schema]
    strings = [(name, str(kind).upper()) for name, kind in columns if _STRING_RE.match(str(kind).upper())]
    lengths: dict[str, float] = {}
    if strings:
        # strlen: UTF-8 bytes of text; octet_length: bytes of a BLOB; a null is 0 bytes.
        select = ", ".join(
            f"avg(coalesce(2 + {'octet_length' if kind in ('BLOB', 'BIT') else 'strlen'}({_quote(n)}), 0))"
            for n, kind in strings)
        sample = execute(f"select {select} from {_quote(schema)}.{_quote(table)} "
                         f"using sample {int(sample_rows)} rows", [])
        if sample:
            lengths = {n: float(v) for (n, _), v in zip(strings, sample[0]) if v is not None}
    return {name: logical_width(str(kind), lengths.get(name)) for name, kind in columns}


# ---- BigQuery jobs ---------------------------------------------------------------------------

_LABEL_RE = re.compile(r"[^a-z0-9_-]+")


def label_value(text: str) -> str:
    """A BigQuery label value: lower case letters, digits, ``_`` and ``-``, at most 63 characters."""
    return _LABEL_RE.sub("_", text.lower())[:63]


def job_labels(component: str, name: str) -> dict[str, str]:
    """Labels every Strata BigQuery job carries, so ``INFORMATION_SCHEMA.JOBS`` can be grouped by
    them: ``app=strata``, ``component`` (``dbt``, ``api``, ``monitoring``) and the query name
    (``dbt_node`` for dbt, ``api_query`` for the API, ``query`` otherwise)."""
    key = {"dbt": "dbt_node", "api": "api_query"}.get(component, "query")
    return {"app": "strata", "component": label_value(component), key: label_value(name)}


_REGION_RE = re.compile(r"^region-[a-z0-9-]{2,30}$")


def bigquery_jobs_sql(region: str) -> str:
    """Bytes and slot time per dbt node and API query over ``@days`` days, from the project's
    ``INFORMATION_SCHEMA.JOBS`` (needs ``bigquery.jobs.listAll``). ``region`` is vetted
    (``region-eu``, ``region-us`` ...); ``@days`` is a query parameter."""
    if not _REGION_RE.match(region):
        raise ValueError(f"region {region!r} must look like region-eu or region-us")
    return f"""
select
  date(creation_time) as day,
  (select value from unnest(labels) where key = 'component') as component,
  coalesce((select value from unnest(labels) where key = 'dbt_node'),
           (select value from unnest(labels) where key = 'api_query'),
           (select value from unnest(labels) where key = 'query')) as query_name,
  count(*) as jobs,
  sum(total_bytes_processed) as bytes_processed,
  sum(total_bytes_billed) as bytes_billed,
  sum(total_slot_ms) as slot_ms
from `{region}`.INFORMATION_SCHEMA.JOBS
where creation_time >= timestamp_sub(current_timestamp(), interval @days day)
  and job_type = 'QUERY'
  and exists (select 1 from unnest(labels) where key = 'app' and value = 'strata')
group by day, component, query_name
order by day, component, query_name
"""


def spike(history: list[float], latest: float, *, factor: float, min_history: int,
          min_bytes: float) -> float | None:
    """``latest / median(history)`` when it exceeds ``factor`` (and ``latest >= min_bytes``),
    else None. Needs ``min_history`` earlier values: a new query has no "usual" yet."""
    usual = [h for h in history if h > 0]
    if len(usual) < min_history or latest < min_bytes:
        return None
    usual.sort()
    mid = len(usual) // 2
    median = usual[mid] if len(usual) % 2 else (usual[mid - 1] + usual[mid]) / 2
    ratio = latest / median
    return ratio if ratio > factor else None

"""The raw tables' BigQuery definitions, derived from the contract, and their creation.

``strata_core.schemas`` holds the columns and ``strata_core.resources`` the layout (partitioning,
clustering, expirations); nothing here names a column.
"""

from __future__ import annotations

from google.cloud import bigquery

from strata_core import contract as c
from strata_core import resources, schemas

_MS_PER_DAY = 24 * 60 * 60 * 1000


def schema_fields(table: str) -> list[bigquery.SchemaField]:
    """The contract columns of raw table ``table`` as ``SchemaField`` s."""
    return [bigquery.SchemaField(f["name"], f["type"], mode=f["mode"], description=f["description"])
            for f in schemas.bigquery_schema(table)["fields"]]


def table_definition(project: str, dataset: str, table: str) -> bigquery.Table:
    """The ``google.cloud.bigquery.Table`` for raw table ``table`` (``events``, ``dead_letters``,
    ``users``): contract columns, DAY partitioning on the layout's partition field with its
    expiration (days converted to ms), and clustering."""
    if table not in schemas.RAW_TABLES:
        raise ValueError(f"unknown raw table {table!r}; expected one of {sorted(schemas.RAW_TABLES)}")
    definition = bigquery.Table(f"{project}.{dataset}.{table}", schema=schema_fields(table))
    layout = schemas.BIGQUERY_LAYOUT[table]
    if layout["partition_field"]:
        days = layout["partition_expiration_days"]
        definition.time_partitioning = bigquery.TimePartitioning(
            type_=bigquery.TimePartitioningType.DAY,
            field=layout["partition_field"],
            expiration_ms=days * _MS_PER_DAY if days else None,
        )
    if layout["cluster_fields"]:
        definition.clustering_fields = list(layout["cluster_fields"])
    definition.description = f"Strata raw {table}, contract v{c.CONTRACT_VERSION}."
    return definition


def ensure_datasets(client: bigquery.Client, project: str, location: str | None = None,
                    names: dict[str, str] | None = None) -> dict[str, bigquery.Dataset]:
    """Create the layer datasets (``resources.DATASETS``: raw, staging, curated, mart) if missing,
    with their default partition expirations; idempotent. ``names`` maps a layer to another
    dataset name (default: the layer's name). An existing dataset is left as it is."""
    created = {}
    for layer, spec in resources.DATASETS.items():
        ds = bigquery.Dataset(f"{project}.{(names or {}).get(layer, layer)}")
        ds.description = spec.description
        if location:
            ds.location = location
        if spec.default_partition_expiration_days:
            ds.default_partition_expiration_ms = spec.default_partition_expiration_days * _MS_PER_DAY
        created[layer] = client.create_dataset(ds, exists_ok=True)
    return created


def ensure_tables(client: bigquery.Client, project: str, dataset: str,
                  location: str | None = None) -> dict[str, bigquery.Table]:
    """Create ``dataset`` and the raw tables if missing; idempotent. Returns the tables by name.

    An existing table is left as it is, but if it lacks a contract column this raises
    ``RuntimeError`` naming the columns: every insert would fail with "no such field", and adding
    columns to a production table is a deliberate migration, not a side effect of a run.
    """
    ds = bigquery.Dataset(f"{project}.{dataset}")
    if location:
        ds.location = location
    client.create_dataset(ds, exists_ok=True)
    tables = {}
    for name in schemas.RAW_TABLES:
        table = client.create_table(table_definition(project, dataset, name), exists_ok=True)
        existing = {f.name for f in table.schema}
        missing = [f["name"] for f in schemas.bigquery_schema(name)["fields"] if f["name"] not in existing]
        if missing:
            raise RuntimeError(
                f"BigQuery table {project}.{dataset}.{name} exists but lacks contract columns "
                f"{missing}; add them (bq update / ALTER TABLE ADD COLUMN) before ingesting.")
        tables[name] = table
    return tables

"""The warehouse tables the API reads, declared from ``docs/layers.md`` (never reflected).

Reflection is avoided on purpose: duckdb-engine's reflection fails on duckdb 2.0.1, and an
explicit declaration is the contract we test against. Only the columns the API reads are listed;
extra columns in a model are harmless. Schemas are the layer names; on BigQuery they are mapped
to datasets with ``schema_translate_map`` (see ``engine``).
"""

from __future__ import annotations

import sqlalchemy as sa

from .money import ExactNumeric

metadata = sa.MetaData()
_TS = sa.DateTime(timezone=True)
_MONEY = ExactNumeric()

stg_events = sa.Table(
    "stg_events", metadata,
    sa.Column("event_id", sa.String), sa.Column("event_type", sa.String),
    sa.Column("user_id", sa.String), sa.Column("anonymous_id", sa.String),
    sa.Column("session_id", sa.String), sa.Column("event_timestamp", _TS),
    sa.Column("event_date", sa.Date), sa.Column("platform", sa.String),
    sa.Column("amount", _MONEY), sa.Column("currency", sa.String),
    sa.Column("properties", sa.String), sa.Column("context", sa.String),
    sa.Column("received_at", _TS), sa.Column("item_id", sa.String),
    sa.Column("order_id", sa.String), sa.Column("search_query", sa.String),
    sa.Column("error_code", sa.String), sa.Column("strata_session_id", sa.String),
    schema="staging",
)

user_metrics = sa.Table(
    "user_metrics", metadata,
    sa.Column("user_id", sa.String), sa.Column("date", sa.Date),
    sa.Column("count_events", sa.BigInteger), sa.Column("count_sessions", sa.BigInteger),
    sa.Column("revenue", _MONEY), sa.Column("gross_revenue", _MONEY), sa.Column("refunds", _MONEY),
    sa.Column("count_orders", sa.BigInteger),
    sa.Column("first_event_at", _TS), sa.Column("last_event_at", _TS),
    schema="curated",
)

business_metrics = sa.Table(
    "business_metrics", metadata,
    sa.Column("date", sa.Date), sa.Column("dau", sa.BigInteger),
    sa.Column("revenue", _MONEY), sa.Column("gross_revenue", _MONEY), sa.Column("refunds", _MONEY),
    sa.Column("orders", sa.BigInteger), sa.Column("paying_users", sa.BigInteger),
    sa.Column("aov", _MONEY), sa.Column("new_users", sa.BigInteger), sa.Column("sessions", sa.BigInteger),
    schema="mart",
)

user_analytics = sa.Table(
    "user_analytics", metadata,
    sa.Column("user_id", sa.String), sa.Column("first_seen_at", _TS), sa.Column("last_seen_at", _TS),
    sa.Column("count_events", sa.BigInteger), sa.Column("count_sessions", sa.BigInteger),
    sa.Column("total_revenue", _MONEY), sa.Column("active_days", sa.BigInteger),
    schema="mart",
)

funnel_events = sa.Table(
    "funnel_events", metadata,
    sa.Column("event_id", sa.String), sa.Column("user_id", sa.String), sa.Column("event_type", sa.String),
    sa.Column("event_date", sa.Date), sa.Column("event_timestamp", _TS),
    schema="mart",
)

#: Bookkeeping columns dbt adds to every model; never features.
METADATA_COLUMNS = frozenset({"loaded_at"})

#: Feature tables: their feature columns are discovered at run time (``queries.feature_columns``)
#: and only ever used as identifiers after matching that catalogue.
FEATURE_TABLES = {
    "ml_features": ("curated", ("user_id", "as_of_date")),
    "ml_training": ("mart", ("user_id", "as_of_date", "label_purchases_next_7d")),
}


def feature_table(name: str, columns: tuple[str, ...] = ()) -> sa.TableClause:
    """A lightweight table clause for a feature table with the given (vetted) columns."""
    schema, keys = FEATURE_TABLES[name]
    return sa.table(name, *[sa.column(c) for c in dict.fromkeys((*keys, *columns))], schema=schema)

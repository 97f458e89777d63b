"""Build a DuckDB warehouse with the ``docs/layers.md`` tables from an event list, in SQL.

A stand-in for the dbt project while testing the API in isolation: same table names, columns
and semantics (dedupe first-received, 30-minute sessions per identity, daily/user rollups,
point-in-time features). Written like the real publisher: build a side file, ``os.replace`` it
onto ``warehouse.duckdb``, then write ``data_version``.
"""

from __future__ import annotations

import os
import pathlib
import uuid

import duckdb
import pyarrow as pa

RAW_COLUMNS = ("event_id", "event_type", "user_id", "anonymous_id", "session_id", "event_timestamp",
               "event_date", "platform", "amount", "currency", "properties", "received_at")

ARROW_TYPES = {"event_timestamp": pa.timestamp("us", tz="UTC"), "received_at": pa.timestamp("us", tz="UTC"),
               "event_date": pa.date32(), "amount": pa.decimal128(38, 9)}

SQL = """
create schema raw; create schema staging; create schema curated; create schema mart;
create table raw.events (
    event_id varchar, event_type varchar, user_id varchar, anonymous_id varchar, session_id varchar,
    event_timestamp timestamptz, event_date date, platform varchar, amount decimal(38, 9),
    currency varchar, properties varchar, received_at timestamptz);
"""

BUILD = """
create table staging.stg_events as
with base as (
    select * from raw.events
    qualify row_number() over (partition by event_id order by received_at, event_id) = 1
), ident as (
    select *, coalesce(user_id, 'anonymous:' || anonymous_id) as identity,
           lag(event_timestamp) over (partition by coalesce(user_id, 'anonymous:' || anonymous_id)
                                      order by event_timestamp, event_id) as prev_at
    from base
), numbered as (
    select *, sum(case when prev_at is null
                       or epoch_us(event_timestamp) - epoch_us(prev_at) >= 1800 * 1000000 then 1 else 0 end)
              over (partition by identity order by event_timestamp, event_id
                    rows between unbounded preceding and current row) as session_number
    from ident
)
select event_id, event_type, user_id, anonymous_id, session_id,
       md5(identity || '|' || session_number) as strata_session_id,
       event_timestamp, event_date, received_at, platform, currency, amount, properties,
       cast(null as varchar) as context,
       json_extract_string(properties, '$.item_id') as item_id,
       json_extract_string(properties, '$.order_id') as order_id,
       json_extract_string(properties, '$.query') as search_query,
       json_extract_string(properties, '$.code') as error_code,
       now() as loaded_at
from numbered;

create table staging.stg_sessions as
select strata_session_id as session_id, max(user_id) as user_id, min(event_timestamp) as session_started_at,
       max(event_timestamp) as session_ended_at, cast(min(event_timestamp) as date) as session_date,
       count(*) as count_events
from staging.stg_events group by strata_session_id;

create table staging.stg_users (user_id varchar, created_at timestamptz, signup_date date,
                                country varchar, plan varchar);

create table curated.user_metrics as
select user_id, event_date as date, count(*) as count_events,
       count(distinct strata_session_id) as count_sessions,
       cast(coalesce(sum(case when event_type = 'purchase' then amount end), 0)
          - coalesce(sum(case when event_type = 'refund' then amount end), 0) as decimal(38, 9)) as revenue,
       cast(coalesce(sum(case when event_type = 'purchase' then amount end), 0) as decimal(38, 9)) as gross_revenue,
       cast(coalesce(sum(case when event_type = 'refund' then amount end), 0) as decimal(38, 9)) as refunds,
       sum(case when event_type = 'purchase' then 1 else 0 end) as count_orders,
       min(event_timestamp) as first_event_at, max(event_timestamp) as last_event_at, now() as loaded_at
from staging.stg_events where user_id is not null group by user_id, event_date;

create table curated.event_metrics as
select event_type, event_date as date, count(*) as count_events, count(distinct user_id) as count_users
from staging.stg_events group by event_type, event_date;

create table mart.business_metrics as
with days as (
    select event_date as date, count(distinct user_id) as dau,
           cast(coalesce(sum(case when event_type = 'purchase' then amount end), 0) as decimal(38, 9)) as gross,
           cast(coalesce(sum(case when event_type = 'refund' then amount end), 0) as decimal(38, 9)) as refunds,
           sum(case when event_type = 'purchase' then 1 else 0 end) as orders,
           count(distinct case when event_type = 'purchase' then user_id end) as paying_users
    from staging.stg_events group by event_date
), sessions as (
    select session_date as date, count(*) as sessions from staging.stg_sessions group by session_date
)
select days.date, dau, cast(gross - refunds as decimal(38, 9)) as revenue, gross as gross_revenue, refunds,
       orders, paying_users,
       case when orders > 0 then cast(round(gross / orders, 9) as decimal(38, 9)) end as aov,
       0 as new_users, coalesce(sessions.sessions, 0) as sessions, now() as loaded_at
from days left join sessions using (date);

create table mart.user_analytics as
select m.user_id, min(first_event_at) as first_seen_at, max(last_event_at) as last_seen_at,
       sum(count_events) as count_events,
       (select count(*) from staging.stg_sessions s where s.user_id = m.user_id) as count_sessions,
       cast(sum(revenue) as decimal(38, 9)) as total_revenue, count(*) as active_days, now() as loaded_at
from curated.user_metrics m group by m.user_id;

create table mart.funnel_events as
select event_id, user_id, event_type, event_date, event_timestamp, now() as loaded_at
from staging.stg_events where user_id is not null;

create table curated.ml_features as
select a.user_id, a.date as as_of_date,
       sum(case when h.date > a.date - 7 then h.count_events else 0 end) as count_events_7d,
       sum(h.count_orders) as count_orders_28d,
       cast(sum(h.revenue) as decimal(38, 9)) as revenue_28d,
       now() as loaded_at
from curated.user_metrics a
join curated.user_metrics h on h.user_id = a.user_id and h.date <= a.date and h.date > a.date - 28
group by a.user_id, a.date;

create table mart.ml_training as
select f.user_id, f.as_of_date, f.count_events_7d, f.count_orders_28d, f.revenue_28d,
       coalesce((select sum(count_orders) from curated.user_metrics u
                 where u.user_id = f.user_id and u.date > f.as_of_date and u.date <= f.as_of_date + 7), 0)
           as label_purchases_next_7d,
       now() as loaded_at
from curated.ml_features f;
"""


def build(home: pathlib.Path, events: list[dict], version: str | None = None) -> str:
    """Publish a warehouse built from ``events`` into ``home``; returns its data version."""
    home.mkdir(parents=True, exist_ok=True)
    side = home / f".build-{uuid.uuid4().hex}.duckdb"
    con = duckdb.connect(str(side))
    try:
        con.execute("set TimeZone = 'UTC'")
        con.execute(SQL)
        rows = pa.table({c: [e[c] for e in events] for c in RAW_COLUMNS},
                        schema=pa.schema([(c, ARROW_TYPES.get(c, pa.string())) for c in RAW_COLUMNS]))
        con.register("incoming", rows)
        con.execute(f"insert into raw.events ({', '.join(RAW_COLUMNS)}) select * from incoming")
        con.unregister("incoming")
        con.execute(BUILD)
    finally:
        con.close()
    os.replace(side, home / "warehouse.duckdb")
    version = version or uuid.uuid4().hex[:12]
    tmp = home / ".data_version.tmp"
    tmp.write_text(version)
    os.replace(tmp, home / "data_version")
    return version

{#- Typed, deduplicated events: one row per event_id, the first received copy wins.
    Rebuilt a whole event_date at a time: the dates of raw rows received after the newest raw
    row a previous run read (received_high_water_at). Design name: part of `events_clean` (see stg_events). -#}
{{ config(**strata.date_partitioned('event_date', cluster_by=['user_id', 'event_type'],
                                    retention_days=var('staging_retention_days'))) }}

{#- Streamed rows get a look-back of their own: one micro-batch lands as several parts (one per
    event_date) sharing one received_at, so a run that reads between two of them has already
    moved its watermark to that received_at. Re-reading the last stream_lookback_minutes of
    streamed rows rebuilds those dates again (deduplicated, so nothing counts twice). -#}
{%- set rebuild_dates = strata.changed_dates([{
        'relation': source('raw', 'events'), 'date_column': 'event_date',
        'changed_column': 'received_at', 'watermark': 'received_high_water_at',
        'lookback_minutes': var('received_at_lookback_minutes')}, {
        'relation': source('raw', 'events'), 'date_column': 'event_date',
        'changed_column': 'received_at', 'watermark': 'received_high_water_at',
        'lookback_minutes': var('stream_lookback_minutes'), 'where': "ingest_source = 'stream'"}]) -%}

with

source as (

    select * from {{ source('raw', 'events') }}
    {{- strata.where_dates('event_date', rebuild_dates) }}

),

{% if rebuild_dates is not none -%}
{%- set neighbour_dates = strata.widen_dates(rebuild_dates, var('dedupe_window_days'), var('dedupe_window_days'))
                          | reject('in', rebuild_dates) | list -%}
-- event_ids already kept in nearby dates this run does not rebuild: those copies were received
-- earlier (raw only grows), so they win over any copy in the rebuilt dates.
already_kept as (

    select event_id
    from {{ this }}
    where {{ strata.in_dates('event_date', neighbour_dates) }}

),

{% endif -%}

ranked as (

    select
        source.*,
        -- the newest raw row this run read (duplicates that lose included): next run's watermark
        max(received_at) over () as received_high_water_at,
        row_number() over (
            partition by event_id
            order by received_at, row_key
        ) as receipt_rank
    from source
    {%- if rebuild_dates is not none %}
    where event_id not in (select event_id from already_kept)
    {%- endif %}

),

renamed as (

    select
        ---------- ids
        event_id,
        event_type,
        user_id,
        anonymous_id,
        session_id,

        ---------- timestamps
        event_timestamp,
        event_date,
        received_at,

        ---------- dimensions
        platform,
        currency,
        schema_version,

        ---------- money
        cast(amount as {{ strata.type_money() }}) as amount,

        ---------- payload (JSON text) and the properties used downstream
        {{ strata.json_as_text("properties") }} as properties,
        {{ strata.json_as_text("context") }} as context,
        {{ strata.json_text('properties', 'item_id') }} as item_id,
        {{ strata.json_text('properties', 'order_id') }} as order_id,
        {{ strata.json_text('properties', 'query') }} as search_query,
        {{ strata.json_text('properties', 'code') }} as error_code,

        ---------- lineage
        ingest_source,
        row_key,
        received_high_water_at,
        {{ strata.run_started_at_literal() }} as loaded_at

    from ranked
    where receipt_rank = 1

)

select * from renamed

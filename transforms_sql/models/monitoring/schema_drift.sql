{#- Every top-level key of properties, context and extra (per event type), every event type and
    every ingest source, with when it was first received and an example. strata_monitor's
    schema_drift and new_source rules compare it with the contract (strata_core/contract.py):
    the model itself knows no declared keys, so the contract stays their only home.
    Columns: strata_core/monitoring.py (SCHEMA_DRIFT).

    Incremental: reads the raw rows received after the newest one a previous build read, in
    the event_date partitions that received them (found like base_raw__events finds its dates,
    so a backfill of old dates is read too, and BigQuery scans no other partition's JSON);
    keys already known stay as first seen. -#}
{{ config(**strata.keyed(['kind', 'event_type', 'name'], cluster_by=['kind', 'name'])) }}

{%- set rebuild_dates = strata.changed_dates([{
        'relation': source('raw', 'events'), 'date_column': 'event_date',
        'changed_column': 'received_at', 'watermark': 'received_high_water_at'}]) -%}
{%- set since = strata.max_as_text(this, 'received_high_water_at') if rebuild_dates is not none else none -%}

with

source as (

    select event_id, event_type, ingest_source, event_date, received_at, properties, context, extra
    from {{ source('raw', 'events') }}
    {%- if rebuild_dates is not none %}
    where {{ strata.in_dates('event_date', rebuild_dates) }}
      and received_at > {{ strata.timestamp_literal(since) }}
    {%- endif %}

),

seen as (

    {% for field in ['properties', 'context', 'extra'] -%}
    select
        '{{ field }}' as kind,
        source.event_type,
        k_{{ field }} as name,
        source.received_at,
        source.event_date,
        source.event_id,
        {{ strata.json_value_at('source.' ~ field, 'k_' ~ field) }} as example_value
    from source
    {{ strata.join_json_keys('source.' ~ field, 'k_' ~ field) }}

    union all

    {% endfor -%}
    select 'event_type' as kind, event_type, event_type as name, received_at, event_date, event_id,
           cast(null as {{ dbt.type_string() }}) as example_value
    from source

    union all

    select 'ingest_source' as kind, '' as event_type, ingest_source as name, received_at, event_date, event_id,
           cast(null as {{ dbt.type_string() }}) as example_value
    from source

),

ranked as (

    select
        seen.*,
        row_number() over (partition by kind, event_type, name order by received_at, event_id) as seen_rank
    from seen

),

first_seen as (

    select ranked.*
    from ranked
    {%- if rebuild_dates is not none %}
    left join {{ this }} as known
        on known.kind = ranked.kind and known.event_type = ranked.event_type and known.name = ranked.name
    {%- endif %}
    where ranked.seen_rank = 1
    {%- if rebuild_dates is not none %} and known.name is null{% endif %}

),

final as (

    select
        kind,
        event_type,
        name,
        received_at as first_seen_at,
        event_date as first_seen_event_date,
        event_id as example_event_id,
        substr(example_value, 1, 200) as example_value,
        (select max(received_at) from source) as received_high_water_at,
        {{ strata.run_started_at_literal() }} as loaded_at
    from first_seen

)

select * from final

{#- Design name: `sessions_clean`. One row per Strata session (see stg_events), dated by the
    UTC date its first event happened. Rebuilt by session_date: the dates stg_events rebuilt,
    reading a day either side: sessions that cross midnight are then complete, and a session
    that started the day before a rebuilt date keeps its own (not rebuilt) date. -#}
{{ config(**strata.date_partitioned('session_date', cluster_by=['user_id'],
                                    retention_days=var('staging_retention_days'))) }}

{%- set rebuild_dates = strata.changed_dates([{
        'relation': ref('stg_events'), 'date_column': 'event_date', 'changed_column': 'loaded_at'}]) -%}
{%- set read_dates = strata.widen_dates(rebuild_dates, 1, 1) if rebuild_dates is not none else none -%}

with

events as (

    select * from {{ ref('stg_events') }}
    {{- strata.where_dates('event_date', read_dates) }}

),

sessions as (

    select
        strata_session_id as session_id,
        max(user_id) as user_id,
        max(anonymous_id) as anonymous_id,
        min(event_timestamp) as session_started_at,
        max(event_timestamp) as session_ended_at,
        {{ strata.utc_date('min(event_timestamp)') }} as session_date,
        count(*) as count_events,
        cast(sum(case when event_type = 'purchase' then 1 else 0 end) as {{ dbt.type_bigint() }}) as count_orders
    from events
    group by strata_session_id

),

final as (

    select
        *,
        {{ strata.run_started_at_literal() }} as loaded_at
    from sessions
    {{- strata.where_dates('session_date', rebuild_dates) }}

)

select * from final

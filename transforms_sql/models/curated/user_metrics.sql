{#- One row per identified user per UTC date with at least one event.
    count_sessions = distinct Strata sessions with an event that date (a session crossing
    midnight counts on both dates). Money: revenue = gross_revenue - refunds, exact. -#}
{{ config(**strata.date_partitioned('date', cluster_by=['user_id'],
                                    retention_days=var('curated_retention_days'))) }}

{%- set rebuild_dates = strata.changed_dates([{
        'relation': ref('stg_events'), 'date_column': 'event_date', 'changed_column': 'loaded_at'}]) -%}

with

events as (

    select * from {{ ref('stg_events') }}
    where user_id is not null
    {%- if rebuild_dates is not none %} and {{ strata.in_dates('event_date', rebuild_dates) }}{% endif %}

),

daily as (

    select
        user_id,
        event_date as date,
        count(*) as count_events,
        count(distinct strata_session_id) as count_sessions,
        {{ strata.gross_revenue() }} as gross_revenue,
        {{ strata.refunds() }} as refunds,
        cast(sum(case when event_type = 'purchase' then 1 else 0 end) as {{ dbt.type_bigint() }}) as count_orders,
        min(event_timestamp) as first_event_at,
        max(event_timestamp) as last_event_at
    from events
    group by user_id, event_date

),

final as (

    select
        user_id,
        date,
        count_events,
        count_sessions,
        {{ strata.net_revenue('gross_revenue', 'refunds') }} as revenue,
        cast(gross_revenue as {{ strata.type_money() }}) as gross_revenue,
        cast(refunds as {{ strata.type_money() }}) as refunds,
        count_orders,
        first_event_at,
        last_event_at,
        {{ strata.run_started_at_literal() }} as loaded_at
    from daily

)

select * from final

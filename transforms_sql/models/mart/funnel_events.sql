{#- Funnel support: one row per event of an identified user, with only what a funnel query
    needs. A user reaches step k of Funnel(range, steps) when they have events of steps 1..k at
    non-decreasing event_timestamp, all with event_date in range (docs/layers.md); the API
    evaluates that greedily (earliest step-1 event, then the earliest step-2 event not before
    it, ...), which needs every timestamp, not first/last per day. -#}
{{ config(**strata.date_partitioned('event_date', cluster_by=['event_type', 'user_id'],
                                    retention_days=var('mart_retention_days'))) }}

{%- set rebuild_dates = strata.changed_dates([{
        'relation': ref('stg_events'), 'date_column': 'event_date', 'changed_column': 'loaded_at'}]) -%}

with

events as (

    select * from {{ ref('stg_events') }}
    where user_id is not null
    {%- if rebuild_dates is not none %} and {{ strata.in_dates('event_date', rebuild_dates) }}{% endif %}

),

final as (

    select
        event_id,
        user_id,
        event_type,
        event_date,
        event_timestamp,
        {{ strata.run_started_at_literal() }} as loaded_at
    from events

)

select * from final
{{ strata.cluster_order(['event_type', 'event_date', 'user_id']) }}

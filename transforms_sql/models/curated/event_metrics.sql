{#- One row per event_type per UTC date: events and distinct identified users. -#}
{{ config(**strata.date_partitioned('date', cluster_by=['event_type'],
                                    retention_days=var('curated_retention_days'))) }}

{%- set rebuild_dates = strata.changed_dates([{
        'relation': ref('stg_events'), 'date_column': 'event_date', 'changed_column': 'loaded_at'}]) -%}

with

events as (

    select * from {{ ref('stg_events') }}
    {{- strata.where_dates('event_date', rebuild_dates) }}

),

final as (

    select
        event_type,
        event_date as date,
        count(*) as count_events,
        count(distinct user_id) as count_users,
        {{ strata.run_started_at_literal() }} as loaded_at
    from events
    group by event_type, event_date

)

select * from final

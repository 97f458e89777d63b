{#- The default funnel (var funnel_steps) evaluated for each single UTC date: one row per date
    per step with the users who reached it. Ranges longer than a day are not additive; the API
    computes those from funnel_events with the same greedy rule. -#}
{{ config(**strata.date_partitioned('event_date', retention_days=var('mart_retention_days'))) }}

{%- set steps = var('funnel_steps') -%}
{%- set rebuild_dates = strata.changed_dates([{
        'relation': ref('funnel_events'), 'date_column': 'event_date', 'changed_column': 'loaded_at'}]) -%}

with

events as (

    select * from {{ ref('funnel_events') }}
    where event_type in ({% for s in steps %}'{{ s }}'{{ ", " if not loop.last }}{% endfor %})
    {%- if rebuild_dates is not none %} and {{ strata.in_dates('event_date', rebuild_dates) }}{% endif %}

),

{% for step in steps -%}
-- users at step {{ loop.index }} ({{ step }}): the earliest qualifying time, so later steps
-- have the widest choice of events not before it.
step_{{ loop.index }} as (

    select events.user_id, events.event_date, min(events.event_timestamp) as reached_at
    from events
    {%- if not loop.first %}
    inner join step_{{ loop.index0 }} as previous
        on previous.user_id = events.user_id
        and previous.event_date = events.event_date
        and events.event_timestamp >= previous.reached_at
    {%- endif %}
    where events.event_type = '{{ step }}'
    group by events.user_id, events.event_date

),

{% endfor -%}

counts as (

    {% for step in steps -%}
    select event_date, cast({{ loop.index }} as {{ dbt.type_bigint() }}) as step_number, '{{ step }}' as step_name, count(*) as count_users
    from step_{{ loop.index }}
    group by event_date
    {{ "union all" if not loop.last }}
    {% endfor %}

),

final as (

    select
        counts.event_date,
        counts.step_number,
        counts.step_name,
        counts.count_users,
        {{ strata.run_started_at_literal() }} as loaded_at
    from counts

)

select * from final

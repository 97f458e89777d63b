{#- Point-in-time features: one row per identified user per as-of date on which the user was
    active. Every feature reads only user_metrics rows with date <= as_of_date (no leakage),
    over a rolling window of 28 days ending on as_of_date, plus tenure from stg_users. A change
    on date d changes rows for as-of dates d .. d + window - 1. The windows are fixed: they are
    part of the column names (a different window is a new column, see dbt_project.yml). -#}
{%- set window_days = 28 -%}
{{ config(**strata.date_partitioned('as_of_date', cluster_by=['user_id'],
                                    retention_days=var('curated_retention_days'))) }}

{%- set rebuild_dates = strata.changed_dates([{
        'relation': ref('user_metrics'), 'date_column': 'date', 'changed_column': 'loaded_at',
        'after': window_days - 1}]) -%}
{%- set read_dates = strata.widen_dates(rebuild_dates, window_days - 1, 0) if rebuild_dates is not none else none -%}

with

daily as (

    select * from {{ ref('user_metrics') }}
    {{- strata.where_dates('date', read_dates) }}

),

as_of as (

    select user_id, date as as_of_date
    from daily
    {{- strata.where_dates('date', rebuild_dates) }}

),

windowed as (

    select
        as_of.user_id,
        as_of.as_of_date,
        {%- for days in [1, 7, window_days] %}
        cast(sum(case when history.date > {{ strata.add_days('as_of.as_of_date', -days) }} then history.count_events else 0 end) as {{ dbt.type_bigint() }}) as count_events_{{ days }}d,
        {%- endfor %}
        cast(sum(case when history.date > {{ strata.add_days('as_of.as_of_date', -7) }} then 1 else 0 end) as {{ dbt.type_bigint() }}) as active_days_7d,
        count(*) as active_days_{{ window_days }}d,
        cast(sum(history.count_sessions) as {{ dbt.type_bigint() }}) as count_sessions_{{ window_days }}d,
        cast(sum(case when history.date > {{ strata.add_days('as_of.as_of_date', -7) }} then history.count_orders else 0 end) as {{ dbt.type_bigint() }}) as count_orders_7d,
        cast(sum(history.count_orders) as {{ dbt.type_bigint() }}) as count_orders_{{ window_days }}d,
        cast(sum(history.revenue) as {{ strata.type_money() }}) as revenue_{{ window_days }}d,
        min(history.date) as first_active_date_in_window
    from as_of
    inner join daily as history
        on history.user_id = as_of.user_id
        and history.date <= as_of.as_of_date
        and history.date > {{ strata.add_days('as_of.as_of_date', -window_days) }}
    group by as_of.user_id, as_of.as_of_date

),

final as (

    select
        windowed.user_id,
        windowed.as_of_date,
        windowed.count_events_1d,
        windowed.count_events_7d,
        windowed.count_events_{{ window_days }}d,
        windowed.active_days_7d,
        windowed.active_days_{{ window_days }}d,
        windowed.count_sessions_{{ window_days }}d,
        windowed.count_orders_7d,
        windowed.count_orders_{{ window_days }}d,
        windowed.revenue_{{ window_days }}d,
        case
            when users.signup_date is null or users.signup_date > windowed.as_of_date then null
            else {{ strata.days_between('users.signup_date', 'windowed.as_of_date') }}
        end as tenure_days,
        {{ strata.run_started_at_literal() }} as loaded_at
    from windowed
    left join {{ ref('stg_users') }} as users
        on users.user_id = windowed.user_id

)

select * from final

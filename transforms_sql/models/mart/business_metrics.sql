{#- One row per UTC date with events or signups. Exact semantics (docs/layers.md):
    dau = distinct non-null user_id with an event; revenue = gross_revenue - refunds;
    orders = purchases; paying_users = distinct user_id with a purchase; aov = gross / orders
    (9 decimals, half away from zero; null without orders); new_users = users whose signup_date
    is the date; sessions = Strata sessions that started that date. -#}
{{ config(**strata.date_partitioned('date', retention_days=var('mart_retention_days'))) }}

{%- set rebuild_dates = strata.changed_dates([
        {'relation': ref('stg_events'), 'date_column': 'event_date', 'changed_column': 'loaded_at'},
        {'relation': ref('stg_sessions'), 'date_column': 'session_date', 'changed_column': 'loaded_at'},
        {'relation': ref('stg_users'), 'date_column': 'signup_date', 'changed_column': 'loaded_at'},
    ]) -%}

with

events as (

    select * from {{ ref('stg_events') }}
    {{- strata.where_dates('event_date', rebuild_dates) }}

),

sessions as (

    select * from {{ ref('stg_sessions') }}
    {{- strata.where_dates('session_date', rebuild_dates) }}

),

users as (

    select * from {{ ref('stg_users') }}
    {{- strata.where_dates('signup_date', rebuild_dates) }}

),

event_days as (

    select
        event_date as date,
        count(distinct user_id) as dau,
        {{ strata.gross_revenue() }} as gross_revenue,
        {{ strata.refunds() }} as refunds,
        cast(sum(case when event_type = 'purchase' then 1 else 0 end) as {{ dbt.type_bigint() }}) as orders,
        count(distinct case when event_type = 'purchase' then user_id end) as paying_users
    from events
    group by event_date

),

session_days as (

    select session_date as date, count(*) as sessions
    from sessions
    group by session_date

),

signup_days as (

    select signup_date as date, count(*) as new_users
    from users
    group by signup_date

),

spine as (

    select date from event_days
    union distinct
    select date from signup_days

),

final as (

    select
        spine.date,
        coalesce(event_days.dau, 0) as dau,
        {{ strata.net_revenue('event_days.gross_revenue', 'event_days.refunds') }} as revenue,
        cast(coalesce(event_days.gross_revenue, {{ strata.money_zero() }}) as {{ strata.type_money() }}) as gross_revenue,
        cast(coalesce(event_days.refunds, {{ strata.money_zero() }}) as {{ strata.type_money() }}) as refunds,
        coalesce(event_days.orders, 0) as orders,
        coalesce(event_days.paying_users, 0) as paying_users,
        {{ strata.money_divide('event_days.gross_revenue', 'event_days.orders') }} as aov,
        coalesce(signup_days.new_users, 0) as new_users,
        coalesce(session_days.sessions, 0) as sessions,
        {{ strata.run_started_at_literal() }} as loaded_at
    from spine
    left join event_days on event_days.date = spine.date
    left join session_days on session_days.date = spine.date
    left join signup_days on signup_days.date = spine.date

)

select * from final

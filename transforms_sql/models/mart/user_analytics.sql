{#- One row per identified user: lifetime activity, money and profile. Upserted per user: a run
    recomputes the users whose user_metrics, sessions or profile changed since it last loaded,
    from all of their rows (history of those users only). -#}
{{ config(**strata.keyed('user_id')) }}

{%- set since = "(select coalesce(max(loaded_at), " ~ strata.timestamp_literal('1900-01-01 00:00:00+00') ~ ") from " ~ this ~ ")" -%}

with

{% if is_incremental() -%}
changed as (

    select user_id from {{ ref('user_metrics') }} where user_id is not null and loaded_at > {{ since }}
    union distinct
    select user_id from {{ ref('stg_sessions') }} where user_id is not null and loaded_at > {{ since }}
    union distinct
    select user_id from {{ ref('stg_users') }} where user_id is not null and loaded_at > {{ since }}

),

{% endif -%}

daily as (

    select * from {{ ref('user_metrics') }}
    {%- if is_incremental() %}
    where user_id in (select user_id from changed)
    {%- endif %}

),

sessions as (

    select user_id, count(*) as count_sessions
    from {{ ref('stg_sessions') }}
    where user_id is not null
    {%- if is_incremental() %} and user_id in (select user_id from changed){% endif %}
    group by user_id

),

activity as (

    select
        user_id,
        min(first_event_at) as first_seen_at,
        max(last_event_at) as last_seen_at,
        cast(sum(count_events) as {{ dbt.type_bigint() }}) as count_events,
        count(*) as active_days,
        cast(sum(count_orders) as {{ dbt.type_bigint() }}) as count_orders,
        cast(sum(revenue) as {{ strata.type_money() }}) as total_revenue,
        cast(sum(gross_revenue) as {{ strata.type_money() }}) as gross_revenue,
        cast(sum(refunds) as {{ strata.type_money() }}) as refunds
    from daily
    group by user_id

),

final as (

    select
        activity.user_id,
        activity.first_seen_at,
        activity.last_seen_at,
        activity.count_events,
        coalesce(sessions.count_sessions, 0) as count_sessions,
        activity.total_revenue,
        activity.gross_revenue,
        activity.refunds,
        activity.count_orders,
        activity.active_days,
        users.signup_date,
        users.country,
        users.plan,
        {{ strata.run_started_at_literal() }} as loaded_at
    from activity
    left join sessions on sessions.user_id = activity.user_id
    left join {{ ref('stg_users') }} as users on users.user_id = activity.user_id

)

select * from final

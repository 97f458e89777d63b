{#- Design name: `users_clean`. One row per user_id: created_at is the earliest known creation
    time; country and plan come from the most recently received record. Upserted per user: a
    run rebuilds the users that have raw rows received after the last received_at it holds. -#}
{{ config(**strata.keyed('user_id')) }}

with

source as (

    select * from {{ source('raw', 'users') }}
    {%- if is_incremental() %}
    where user_id in (
        select user_id from {{ source('raw', 'users') }}
        where received_at > (
            select coalesce(max(received_at), {{ strata.timestamp_literal('1900-01-01 00:00:00+00') }})
            from {{ this }})
    )
    {%- endif %}

),

ranked as (

    select
        *,
        row_number() over (partition by user_id order by received_at desc, row_key desc) as recency_rank,
        min(created_at) over (partition by user_id) as first_created_at
    from source

),

renamed as (

    select
        ---------- ids
        user_id,

        ---------- timestamps
        first_created_at as created_at,
        {{ strata.utc_date('first_created_at') }} as signup_date,
        received_at,

        ---------- attributes
        country,
        plan,
        user_source,

        ---------- lineage
        {{ strata.run_started_at_literal() }} as loaded_at

    from ranked
    where recency_rank = 1

)

select * from renamed

-- DAU(date) can never exceed the number of distinct users seen on or before that date.
with

first_seen as (

    select {{ strata.utc_date('first_seen_at') }} as first_seen_date
    from {{ ref('user_analytics') }}

),

days as (

    select date, dau from {{ ref('business_metrics') }}

),

seen_to_date as (

    select days.date, days.dau, count(first_seen.first_seen_date) as users_seen
    from days
    left join first_seen on first_seen.first_seen_date <= days.date
    group by days.date, days.dau

)

select * from seen_to_date where dau > users_seen

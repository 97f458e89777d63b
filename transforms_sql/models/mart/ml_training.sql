{#- Point-in-time-correct training rows: ml_features (computed from data up to as_of_date) plus
    the label label_purchases_next_7d = purchases on as_of_date+1 .. as_of_date+horizon.
    Labels of the last `horizon` as-of dates are still open (later data can raise them):
    train on as_of_date <= max(as_of_date) - horizon. A change on date d rebuilds the features'
    dates and as-of dates d-horizon .. d-1 whose label window covers d. -#}
{%- set horizon = 7 -%}  {#- part of the label's name, label_purchases_next_7d: fixed -#}
{{ config(**strata.date_partitioned('as_of_date', cluster_by=['user_id'],
                                    retention_days=var('mart_retention_days'))) }}

{%- set rebuild_dates = strata.changed_dates([
        {'relation': ref('ml_features'), 'date_column': 'as_of_date', 'changed_column': 'loaded_at'},
        {'relation': ref('user_metrics'), 'date_column': 'date', 'changed_column': 'loaded_at',
         'before': horizon},
    ]) -%}

with

features as (

    select * from {{ ref('ml_features') }}
    {{- strata.where_dates('as_of_date', rebuild_dates) }}

),

future as (

    select user_id, date, count_orders from {{ ref('user_metrics') }}
    {{- strata.where_dates('date', strata.widen_dates(rebuild_dates, 0, horizon) if rebuild_dates is not none else none) }}

),

labels as (

    select
        features.user_id,
        features.as_of_date,
        cast(coalesce(sum(future.count_orders), 0) as {{ dbt.type_bigint() }}) as label_purchases_next_{{ horizon }}d
    from features
    left join future
        on future.user_id = features.user_id
        and future.date > features.as_of_date
        and future.date <= {{ strata.add_days('features.as_of_date', horizon) }}
    group by features.user_id, features.as_of_date

),

final as (

    select
        features.* {{ strata.star_except(['loaded_at']) }},
        labels.label_purchases_next_{{ horizon }}d,
        {{ strata.run_started_at_literal() }} as loaded_at
    from features
    inner join labels
        on labels.user_id = features.user_id
        and labels.as_of_date = features.as_of_date

)

select * from final

{#- Rows per date partition of raw.events and of every date-partitioned model; for raw.events
    also distinct event_ids, so the duplicate rate per day is 1 - count_distinct_keys / count_rows.
    Columns: strata_core/monitoring.py (PARTITION_STATS). Rebuilt for the dates whose rows
    changed in any monitored model (macros/monitoring/monitored_relations.sql). -#}
{{ config(**strata.date_partitioned('partition_date', cluster_by=['relation'],
                                    retention_days=var('mart_retention_days'))) }}

{%- set rebuild_dates = strata.monitored_changed_dates() -%}

with

counts as (

    {% for rel in strata.monitored_relations() -%}
    select
        '{{ strata.relation_label(rel.relation) }}' as relation,
        {{ rel.date }} as partition_date,
        count(*) as count_rows,
        {% if rel.dedupe_key -%}
        count(distinct {{ rel.dedupe_key }})
        {%- else -%}
        cast(null as {{ dbt.type_bigint() }})
        {%- endif %} as count_distinct_keys
    from {{ rel.relation }}
    {{- strata.where_dates(rel.date, rebuild_dates) }}
    group by {{ rel.date }}
    {{ "union all" if not loop.last }}
    {% endfor %}

),

final as (

    select
        relation,
        partition_date,
        cast(count_rows as {{ dbt.type_bigint() }}) as count_rows,
        cast(count_distinct_keys as {{ dbt.type_bigint() }}) as count_distinct_keys,
        {{ strata.run_started_at_literal() }} as loaded_at
    from counts
    where partition_date is not null

)

select * from final

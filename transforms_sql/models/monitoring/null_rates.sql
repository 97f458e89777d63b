{#- Nulls in the key columns of each monitored relation, per date partition (one scan per
    relation, then one row per column). Columns: strata_core/monitoring.py (NULL_RATES). -#}
{{ config(**strata.date_partitioned('partition_date', cluster_by=['relation'],
                                    retention_days=var('mart_retention_days'))) }}

{%- set rebuild_dates = strata.monitored_changed_dates() -%}

with

{% for rel in strata.monitored_relations() -%}
counts_{{ loop.index }} as (

    select
        {{ rel.date }} as partition_date,
        count(*) as count_rows
        {%- for column in rel.null_columns %},
        count(*) - count({{ column }}) as nulls_{{ loop.index }}
        {%- endfor %}
    from {{ rel.relation }}
    {{- strata.where_dates(rel.date, rebuild_dates) }}
    group by {{ rel.date }}

),

{% endfor -%}

unpivoted as (

    {% for rel in strata.monitored_relations() -%}
    {%- set outer = loop -%}
    {%- for column in rel.null_columns -%}
    select
        '{{ strata.relation_label(rel.relation) }}' as relation,
        partition_date,
        '{{ column }}' as column_name,
        count_rows,
        nulls_{{ loop.index }} as count_nulls
    from counts_{{ outer.index }}
    {{ "union all" if not (outer.last and loop.last) }}
    {% endfor -%}
    {%- endfor %}

),

final as (

    select
        relation,
        partition_date,
        column_name,
        cast(count_rows as {{ dbt.type_bigint() }}) as count_rows,
        cast(count_nulls as {{ dbt.type_bigint() }}) as count_nulls,
        {{ strata.run_started_at_literal() }} as loaded_at
    from unpivoted
    where partition_date is not null

)

select * from final

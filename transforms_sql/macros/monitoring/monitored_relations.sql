{#- The relations the monitoring models profile, one home for the list: every date-partitioned
    relation from raw.events to the marts, its partition column, its dedupe key (raw.events
    only: duplicates are kept in raw and removed in staging) and the key columns whose null
    rate is watched. Columns of strata_core/monitoring.py (partition_stats, null_rates). -#}
{% macro monitored_relations() -%}
    {{ return([
        {'relation': source('raw', 'events'), 'date': 'event_date', 'dedupe_key': 'event_id',
         'null_columns': ['event_id', 'event_type', 'user_id', 'anonymous_id', 'session_id', 'platform']},
        {'relation': ref('base_raw__events'), 'date': 'event_date', 'null_columns': ['user_id', 'anonymous_id']},
        {'relation': ref('stg_events'), 'date': 'event_date',
         'null_columns': ['user_id', 'anonymous_id', 'session_id', 'platform']},
        {'relation': ref('stg_sessions'), 'date': 'session_date', 'null_columns': ['user_id']},
        {'relation': ref('user_metrics'), 'date': 'date', 'null_columns': ['user_id', 'revenue']},
        {'relation': ref('event_metrics'), 'date': 'date', 'null_columns': ['event_type']},
        {'relation': ref('ml_features'), 'date': 'as_of_date', 'null_columns': ['user_id', 'tenure_days']},
        {'relation': ref('business_metrics'), 'date': 'date', 'null_columns': ['dau', 'revenue', 'aov']},
        {'relation': ref('funnel_events'), 'date': 'event_date', 'null_columns': ['user_id', 'event_type']},
        {'relation': ref('funnel_daily'), 'date': 'event_date', 'null_columns': ['count_users']},
        {'relation': ref('ml_training'), 'date': 'as_of_date', 'null_columns': ['user_id', 'label_purchases_next_7d']},
    ]) }}
{%- endmacro %}

{#- `schema.table` of a relation, e.g. staging.stg_events (the layer names are the schemas). -#}
{% macro relation_label(relation) -%}
    {{ return(relation.schema ~ '.' ~ relation.identifier) }}
{%- endmacro %}

{#- The dates a monitoring model rebuilds: those whose rows changed in any monitored model
    since its last build (raw.events changes show up as base_raw__events rebuilds). -#}
{% macro monitored_changed_dates() -%}
    {%- set upstreams = [] -%}
    {%- for rel in strata.monitored_relations() if rel.relation.identifier != 'events' or rel.relation.schema != 'raw' -%}
        {%- do upstreams.append({'relation': rel.relation, 'date_column': rel.date, 'changed_column': 'loaded_at'}) -%}
    {%- endfor -%}
    {{ return(strata.changed_dates(upstreams)) }}
{%- endmacro %}

{#- Top-level keys of a JSON object column, joined as rows named `alias` (none for null). -#}
{% macro join_json_keys(column, alias) -%}
    {{ return(adapter.dispatch('join_json_keys', 'strata')(column, alias)) }}
{%- endmacro %}
{% macro default__join_json_keys(column, alias) -%}
    cross join unnest(json_keys({{ column }})) as {{ alias }}_keys({{ alias }})
{%- endmacro %}
{% macro bigquery__join_json_keys(column, alias) -%}
    cross join unnest(json_keys({{ column }}, 1)) as {{ alias }}
{%- endmacro %}

{#- The value at top-level key `key` (an expression) of a JSON object column, as JSON text.
    DuckDB: a JSON pointer (~ and / escaped), which takes any key; BigQuery: the subscript. -#}
{% macro json_value_at(column, key) -%}
    {{ return(adapter.dispatch('json_value_at', 'strata')(column, key)) }}
{%- endmacro %}
{% macro default__json_value_at(column, key) -%}
    cast(json_extract({{ column }}, '/' || replace(replace({{ key }}, '~', '~0'), '/', '~1')) as varchar)
{%- endmacro %}
{% macro bigquery__json_value_at(column, key) -%}
    to_json_string({{ column }}[{{ key }}])
{%- endmacro %}

{#- The JSON comment on every query (dbt_project.yml, query-comment). On BigQuery its keys
    become job labels; label values must be lower case, so dbt-bigquery sanitises them. -#}
{% macro query_comment(node) -%}
    {%- set comment = {'app': 'strata', 'component': 'dbt', 'dbt_invocation': invocation_id} -%}
    {%- if node is not none -%}
        {%- do comment.update({'dbt_node': node.unique_id}) -%}
    {%- endif -%}
    {{ return(tojson(comment)) }}
{%- endmacro %}

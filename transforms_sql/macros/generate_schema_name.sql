{#- `+schema: staging` means exactly the `staging` schema (BigQuery dataset), not
    `<target schema>_staging`: the layer names are the contract in docs/layers.md. -#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}
        {{ target.schema | trim }}
    {%- else -%}
        {{ custom_schema_name | trim }}
    {%- endif -%}
{%- endmacro %}

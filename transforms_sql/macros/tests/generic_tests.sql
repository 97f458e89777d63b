{#- Generic tests the dbt hub packages would give us (dbt_utils); the hub is unreachable here,
    so the few we need live in the project. Each returns the failing rows. -#}

{#- Every row satisfies `expression` (optionally only rows matching `where`). -#}
{% test expression_is_true(model, expression, column_name=none, where_clause=none) %}
select *
from {{ model }}
where not ({{ expression }})
{%- if where_clause %} and ({{ where_clause }}){% endif %}
{% endtest %}

{#- Within each `group_by` group, `column_name` never increases along `order_by`
    (funnel step counts: users_k+1 <= users_k). -#}
{% test non_increasing(model, column_name, order_by, group_by) %}
with ordered as (
    select
        {{ column_name }} as value,
        lag({{ column_name }}) over (partition by {{ group_by | join(', ') }} order by {{ order_by }}) as previous_value
    from {{ model }}
)
select * from ordered
where previous_value is not null and value > previous_value
{% endtest %}

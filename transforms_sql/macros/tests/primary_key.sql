{#- The primary key of a model: `columns` are never null and never repeat together. Every model
    carries one (a test in tests/test_monitoring_dbt.py sees to it); compound keys included. -#}
{% test primary_key(model, columns) %}
select {{ columns | join(', ') }}, count(*) as count_rows
from {{ model }}
group by {{ columns | join(', ') }}
having count(*) > 1
{%- for column in columns %} or {{ column }} is null{% endfor %}
{% endtest %}

{#- Revenue, defined once (docs/layers.md, "Money"): gross revenue = sum of purchase amounts,
    refunds = sum of refund amounts, net revenue = gross - refunds. Exact money, zero when there
    is nothing to sum. Used by every model that aggregates events into revenue (user_metrics,
    business_metrics); everything downstream, the API included, reads those columns. -#}

{% macro gross_revenue(event_type='event_type', amount='amount') -%}
    coalesce(sum(case when {{ event_type }} = 'purchase' then {{ amount }} end), {{ strata.money_zero() }})
{%- endmacro %}

{% macro refunds(event_type='event_type', amount='amount') -%}
    coalesce(sum(case when {{ event_type }} = 'refund' then {{ amount }} end), {{ strata.money_zero() }})
{%- endmacro %}

{#- Net revenue from the two sums above (column names or expressions; null counts as zero, as
    after an outer join). -#}
{% macro net_revenue(gross_revenue, refunds) -%}
    cast(coalesce({{ gross_revenue }}, {{ strata.money_zero() }}) - coalesce({{ refunds }}, {{ strata.money_zero() }})
         as {{ strata.type_money() }})
{%- endmacro %}

{#- Dialect differences, one dispatch macro each. default__ = DuckDB (and ANSI-ish engines). -#}

{#- Exact money: DECIMAL(38,9) in DuckDB, NUMERIC (= 38,9) on BigQuery. Never float. -#}
{% macro type_money() -%}{{ return(adapter.dispatch('type_money', 'strata')()) }}{%- endmacro %}
{% macro default__type_money() -%}decimal(38, 9){%- endmacro %}
{% macro bigquery__type_money() -%}numeric{%- endmacro %}

{% macro money_zero() -%}cast(0 as {{ strata.type_money() }}){%- endmacro %}

{#- Exact quotient of two money/integer values, rounded half away from zero to 9 decimals:
    integer division of nanos on both warehouses (DuckDB would return DOUBLE for decimal /
    decimal; BigQuery's NUMERIC division rounds too, but we keep one explicit rule).
    Null when the denominator is 0 or null. -#}
{% macro money_divide(numerator, denominator) -%}
    {{ return(adapter.dispatch('money_divide', 'strata')(numerator, denominator)) }}
{%- endmacro %}
{% macro default__money_divide(numerator, denominator) -%}
    case when {{ denominator }} is null or {{ denominator }} = 0 then null else
    cast(cast(
        (
            (abs(cast(cast({{ numerator }} as decimal(38, 9)) * 1000000000 as hugeint)) * 2
                + abs(cast({{ denominator }} as hugeint)))
            // (2 * abs(cast({{ denominator }} as hugeint)))
        ) * sign(cast({{ numerator }} as decimal(38, 9))) * sign({{ denominator }})
        as decimal(38, 9)
    ) * cast(0.000000001 as decimal(10, 9)) as decimal(38, 9))
    end
{%- endmacro %}
{% macro bigquery__money_divide(numerator, denominator) -%}
    {#- The same integer-nano arithmetic as DuckDB, so the rounding rule is explicit, not implied. -#}
    case when {{ denominator }} is null or {{ denominator }} = 0 then null else
    div(
        abs(cast({{ numerator }} as numeric)) * 2000000000 + abs(cast({{ denominator }} as numeric)),
        2 * abs(cast({{ denominator }} as numeric))
    ) * sign(cast({{ numerator }} as numeric)) * sign(cast({{ denominator }} as numeric))
      * numeric '0.000000001'
    end
{%- endmacro %}

{#- A JSON object's top-level key as text (numbers and booleans as their JSON text). -#}
{% macro json_text(column, key) -%}
    {{ return(adapter.dispatch('json_text', 'strata')(column, key)) }}
{%- endmacro %}
{% macro default__json_text(column, key) -%}
    json_extract_string({{ column }}, '$.{{ key }}')
{%- endmacro %}
{% macro bigquery__json_text(column, key) -%}
    json_value({{ column }}, '$.{{ key }}')
{%- endmacro %}

{#- UTC calendar date of a timestamp, independent of the session time zone. -#}
{% macro utc_date(expression) -%}
    {{ return(adapter.dispatch('utc_date', 'strata')(expression)) }}
{%- endmacro %}
{% macro default__utc_date(expression) -%}
    cast(timezone('UTC', {{ expression }}) as date)
{%- endmacro %}
{% macro bigquery__utc_date(expression) -%}
    date({{ expression }}, 'UTC')
{%- endmacro %}

{#- Whole microseconds from `start` to `finish` (timestamps). -#}
{% macro microseconds_between(start, finish) -%}
    {{ return(adapter.dispatch('microseconds_between', 'strata')(start, finish)) }}
{%- endmacro %}
{% macro default__microseconds_between(start, finish) -%}
    (epoch_us({{ finish }}) - epoch_us({{ start }}))
{%- endmacro %}
{% macro bigquery__microseconds_between(start, finish) -%}
    timestamp_diff({{ finish }}, {{ start }}, microsecond)
{%- endmacro %}

{#- `expression` (a DATE) plus `days` (an integer literal or expression). -#}
{% macro add_days(expression, days) -%}
    {{ return(adapter.dispatch('add_days', 'strata')(expression, days)) }}
{%- endmacro %}
{% macro default__add_days(expression, days) -%}
    cast({{ expression }} + cast({{ days }} as integer) as date)
{%- endmacro %}
{% macro bigquery__add_days(expression, days) -%}
    date_add({{ expression }}, interval {{ days }} day)
{%- endmacro %}

{#- Whole days from DATE `start` to DATE `finish`. -#}
{% macro days_between(start, finish) -%}
    {{ return(adapter.dispatch('days_between', 'strata')(start, finish)) }}
{%- endmacro %}
{% macro default__days_between(start, finish) -%}
    date_diff('day', {{ start }}, {{ finish }})
{%- endmacro %}
{% macro bigquery__days_between(start, finish) -%}
    date_diff({{ finish }}, {{ start }}, day)
{%- endmacro %}

{#- Literals built from strings that our own queries returned (never user input). -#}
{% macro timestamp_literal(text) -%}
    {{ return(adapter.dispatch('timestamp_literal', 'strata')(text)) }}
{%- endmacro %}
{% macro default__timestamp_literal(text) -%}
    cast('{{ text }}' as timestamptz)
{%- endmacro %}
{% macro bigquery__timestamp_literal(text) -%}
    timestamp '{{ text }}'
{%- endmacro %}

{% macro date_literal(text) -%}date '{{ text }}'{%- endmacro %}

{#- When this build started, as a timestamp: stamped on every row a run writes (`loaded_at`),
    which is the watermark downstream incremental models compare against. -#}
{% macro run_started_at_literal() -%}
    {{ return(adapter.dispatch('run_started_at_literal', 'strata')()) }}
{%- endmacro %}
{% macro default__run_started_at_literal() -%}
    {{ strata.timestamp_literal(run_started_at.strftime('%Y-%m-%d %H:%M:%S.%f+00')) }}
{%- endmacro %}
{#- Integer microseconds: exact, and immune to literal parsing differences between BigQuery and
    the local stand-in (bqemulator mangles fractional-second literals inside CTAS). -#}
{% macro bigquery__run_started_at_literal() -%}
    {%- set epoch = modules.datetime.datetime(1970, 1, 1, tzinfo=modules.pytz.utc) -%}
    {%- set started = run_started_at if run_started_at.tzinfo else modules.pytz.utc.localize(run_started_at) -%}
    {%- set delta = started - epoch -%}
    timestamp_micros({{ (delta.days * 86400 + delta.seconds) * 1000000 + delta.microseconds }})
{%- endmacro %}

{#- JSON payload columns as JSON text (BigQuery's raw columns are JSON; DuckDB's are text). -#}
{% macro json_as_text(column) -%}
    {{ return(adapter.dispatch('json_as_text', 'strata')(column)) }}
{%- endmacro %}
{% macro default__json_as_text(column) -%}{{ column }}{%- endmacro %}
{% macro bigquery__json_as_text(column) -%}to_json_string({{ column }}){%- endmacro %}

{#- Follows `relation.*` to drop columns: DuckDB `exclude (...)`, BigQuery `except (...)`. -#}
{% macro star_except(columns) -%}
    {{ return(adapter.dispatch('star_except', 'strata')(columns)) }}
{%- endmacro %}
{% macro default__star_except(columns) -%}exclude ({{ columns | join(', ') }}){%- endmacro %}
{% macro bigquery__star_except(columns) -%}except ({{ columns | join(', ') }}){%- endmacro %}

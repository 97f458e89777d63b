{#- Which date partitions an incremental run rebuilds.

    Every model in this project is rebuilt a whole date (or a whole user) at a time. A run finds
    the dates whose *upstream* rows changed since this model last loaded, then replaces exactly
    those dates. Upstream change is detected by a timestamp column compared with this model's
    own watermark:

      raw -> base model:  raw.received_at  >  max(received_at) already in the model
      model -> model:     upstream.loaded_at > max(loaded_at) of this model
                          (loaded_at = run_started_at of the run that wrote the row)

    The dates come back as a Jinja list of 'YYYY-MM-DD' strings and are inlined as literals, so
    scans prune partitions: BigQuery by partition, DuckDB by Parquet/row-group min-max stats. -#}

{#- Returns none when the model should be built in full (not incremental, or empty), else a
    sorted list of date strings (possibly empty: nothing changed).

    upstreams: list of dicts
      relation:       the upstream relation (ref/source)
      date_column:    the upstream's partition column (DATE)
      changed_column: the upstream's change timestamp (received_at / loaded_at)
      watermark:      this model's column holding the last processed value (default loaded_at)
      lookback_minutes: re-read this much before the watermark (default 0)
      where:          optional SQL predicate on the upstream: only its rows count as changes
      before / after: also rebuild this many days before / after each changed date -#}
{% macro changed_dates(upstreams) -%}
    {#- Unit tests render the model against fixtures: always the full-build branch. -#}
    {%- if not execute or model.resource_type == 'unit_test' or not is_incremental() -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set found = [] -%}
    {%- for up in upstreams -%}
        {%- set watermark = strata.max_as_text(this, up.get('watermark', 'loaded_at')) -%}
        {%- if watermark is none -%}
            {{ return(none) }}
        {%- endif -%}
        {%- set threshold = strata.timestamp_literal(watermark) -%}
        {%- if up.get('lookback_minutes', 0) | int > 0 -%}
            {%- set threshold = dbt.dateadd('minute', -1 * (up.get('lookback_minutes') | int), threshold) -%}
        {%- endif -%}
        {%- set sql -%}
            {#- The 'v' prefix keeps agate from re-typing the text as a date. -#}
            select distinct {{ dbt.concat(["'v'", "cast(" ~ up.date_column ~ " as " ~ dbt.type_string() ~ ")"]) }} as changed_date
            from {{ up.relation }}
            where {{ up.changed_column }} > {{ threshold }}
            {%- if up.get('where') %} and ({{ up.where }}){% endif %}
        {%- endset -%}
        {%- for row in run_query(sql) -%}
            {%- if row[0] is not none and row[0] | length > 1 -%}
                {%- for d in strata.date_range_around(row[0][1:11], up.get('before', 0), up.get('after', 0)) -%}
                    {%- do found.append(d) -%}
                {%- endfor -%}
            {%- endif -%}
        {%- endfor -%}
    {%- endfor -%}
    {%- set dates = found | unique | sort | list -%}
    {#- Debug level; `strata transform --dry-run` reads this line (strata/transform.py). -#}
    {%- do log("strata.changed_dates " ~ tojson({"model": this.identifier, "dates": dates}), info=false) -%}
    {{ return(dates) }}
{%- endmacro %}

{#- max(column) of relation as text, or none when the relation is empty. -#}
{% macro max_as_text(relation, column) -%}
    {%- set sql -%}
        select {{ dbt.concat(["'v'", "cast(max(" ~ column ~ ") as " ~ dbt.type_string() ~ ")"]) }} from {{ relation }}
    {%- endset -%}
    {%- set rows = run_query(sql) -%}
    {#- concat() treats null as '' on DuckDB: a bare 'v' means an empty relation. -#}
    {{ return(rows[0][0][1:] if rows and rows[0][0] is not none and rows[0][0] | length > 1 else none) }}
{%- endmacro %}

{#- ['YYYY-MM-DD', ...] from day-before to day+after. -#}
{% macro date_range_around(day, before=0, after=0) -%}
    {%- set base = modules.datetime.date.fromisoformat(day) -%}
    {%- set out = [] -%}
    {%- for offset in range(-1 * (before | int), (after | int) + 1) -%}
        {%- do out.append((base + modules.datetime.timedelta(days=offset)).isoformat()) -%}
    {%- endfor -%}
    {{ return(out) }}
{%- endmacro %}

{#- Expand a list of dates by before/after days (used to read context around rebuilt dates). -#}
{% macro widen_dates(dates, before=0, after=0) -%}
    {%- set out = [] -%}
    {%- for d in dates -%}
        {%- for w in strata.date_range_around(d, before, after) -%}{%- do out.append(w) -%}{%- endfor -%}
    {%- endfor -%}
    {{ return(out | unique | sort | list) }}
{%- endmacro %}

{#- `column in (date '...', ...)`, or a false predicate for an empty list. -#}
{% macro in_dates(column, dates) -%}
    {%- if dates | length == 0 -%}
        1 = 0
    {%- else -%}
        {{ column }} in ({% for d in dates %}{{ strata.date_literal(d) }}{{ ", " if not loop.last }}{% endfor %})
    {%- endif -%}
{%- endmacro %}

{#- Filter for a model's input: nothing on full builds, the date list on incremental ones. -#}
{% macro where_dates(column, dates) -%}
    {%- if dates is not none %}
    where {{ strata.in_dates(column, dates) }}
    {%- endif -%}
{%- endmacro %}

{#- Design name: `events_clean`. One row per event_id (first received wins, see
    base_raw__events), with Strata's own session id.

    Sessions: a maximal run of one identity's events (user_id, else anonymous_id) whose gaps
    are under session_gap_seconds. strata_session_id = hash(identity, first event_id of the
    session), so it is stable for as long as the session's first event is.

    A changed date can move session boundaries on the day before and after (sessions cross
    midnight), so an incremental run rebuilds changed dates +-1 and reads +-2 for context. -#}
{{ config(**strata.date_partitioned('event_date', cluster_by=['user_id', 'event_type'],
                                    retention_days=var('staging_retention_days'))) }}

{%- set rebuild_dates = strata.changed_dates([{
        'relation': ref('base_raw__events'), 'date_column': 'event_date',
        'changed_column': 'loaded_at', 'before': 1, 'after': 1}]) -%}
{%- set read_dates = strata.widen_dates(rebuild_dates, 1, 1) if rebuild_dates is not none else none -%}

with

events as (

    select * from {{ ref('base_raw__events') }}
    {{- strata.where_dates('event_date', read_dates) }}

),

with_identity as (

    select
        *,
        coalesce(user_id, {{ dbt.concat(["'anonymous:'", "anonymous_id"]) }}) as session_identity
    from events

),

with_gaps as (

    select
        *,
        lag(event_timestamp) over (
            partition by session_identity order by event_timestamp, event_id
        ) as previous_event_at
    from with_identity

),

with_starts as (

    select
        *,
        case
            when previous_event_at is null then 1
            when {{ strata.microseconds_between('previous_event_at', 'event_timestamp') }}
                 >= {{ var('session_gap_seconds') }} * 1000000 then 1
            else 0
        end as is_session_start
    from with_gaps

),

numbered as (

    select
        *,
        sum(is_session_start) over (
            partition by session_identity order by event_timestamp, event_id
            rows between unbounded preceding and current row
        ) as session_number
    from with_starts

),

sessionized as (

    select
        *,
        first_value(event_id) over (
            partition by session_identity, session_number order by event_timestamp, event_id
            rows between unbounded preceding and unbounded following
        ) as session_first_event_id
    from numbered

),

final as (

    select
        ---------- ids
        event_id,
        event_type,
        user_id,
        anonymous_id,
        session_id,
        {{ dbt.hash(dbt.concat(["session_identity", "'|'", "session_first_event_id"])) }} as strata_session_id,

        ---------- timestamps
        event_timestamp,
        event_date,
        received_at,

        ---------- dimensions
        platform,
        currency,
        schema_version,

        ---------- money
        amount,

        ---------- payload and extracted properties
        properties,
        context,
        item_id,
        order_id,
        search_query,
        error_code,

        ---------- lineage
        ingest_source,
        row_key,
        {{ strata.run_started_at_literal() }} as loaded_at

    from sessionized
    {{- strata.where_dates('event_date', rebuild_dates) }}

)

select * from final

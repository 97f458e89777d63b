"""What the alert rules, ``strata check`` and the dashboards read, in one place.

Every read is a SQLAlchemy Core statement over tables declared from ``strata_core.monitoring``
(the monitoring schema) or listed below (the marts and raw columns used), with bound
parameters only. :func:`load` runs them through any ``rows(statement, params)`` callable: the
CLI passes a read-only engine on the local DuckDB file (or BigQuery), the Django site passes
its query layer's snapshot, so both read the same facts the same way.

A table that does not exist yet (a fresh warehouse, the streaming job not running) is not an
error: the fact is empty and ``Facts.notes`` says why.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from typing import Any, Callable

import sqlalchemy as sa

from strata_core import monitoring as m
from strata_monitor import anomaly

log = logging.getLogger(__name__)

metadata = sa.MetaData()
_TS = sa.DateTime(timezone=True)
_SA_TYPES = {"string": sa.String, "enum": sa.String, "json": sa.String, "timestamp": lambda: _TS,
             "date": sa.Date, "integer": sa.BigInteger, "float": sa.Float, "boolean": sa.Boolean,
             "decimal": lambda: sa.Numeric(38, 9)}


def _declared(table: m.Table) -> sa.Table:
    return sa.Table(table.name, metadata, *[sa.Column(f.name, _SA_TYPES[f.kind]()) for f in table.fields],
                    schema=m.SCHEMA)


pipeline_runs, run_dead_letters, dbt_results, partition_stats, null_rates, schema_drift = (
    _declared(t) for t in m.TABLES)

# The columns read from the other layers (docs/layers.md); raw columns from the contract.
business_metrics = sa.Table(
    "business_metrics", metadata, sa.Column("date", sa.Date), sa.Column("dau", sa.BigInteger),
    sa.Column("revenue", sa.Numeric(38, 9)), sa.Column("orders", sa.BigInteger),
    sa.Column("aov", sa.Numeric(38, 9)), schema="mart")
event_metrics = sa.Table(
    "event_metrics", metadata, sa.Column("event_type", sa.String), sa.Column("date", sa.Date),
    sa.Column("count_events", sa.BigInteger), schema="curated")
raw_events = sa.Table("events", metadata, sa.Column("event_date", sa.Date), sa.Column("received_at", _TS),
                      schema="raw")
raw_users = sa.Table("users", metadata, sa.Column("received_at", _TS), schema="raw")
raw_dead_letters = sa.Table("dead_letters", metadata, sa.Column("failed_at", _TS), schema="raw")
#: The streaming job's per-minute counts (a later pane of a window supersedes an earlier one).
event_counts_per_minute = sa.Table(
    "event_counts_per_minute", metadata, sa.Column("window_start", _TS), sa.Column("window_end", _TS),
    sa.Column("event_type", sa.String), sa.Column("count_events", sa.BigInteger),
    sa.Column("pane_timing", sa.String), sa.Column("emitted_at", _TS), schema="raw")

#: The marts whose freshness has an SLA (docs/layers.md, "mart").
MARTS = ("business_metrics", "user_analytics", "funnel_events", "funnel_daily", "ml_training")
RAW_SOURCES = ("raw.events", "raw.users", "raw.dead_letters")


@dataclasses.dataclass(frozen=True)
class Metric:
    """A daily series the anomaly rule watches."""

    name: str  # "orders", "events.purchase", "dead_letter_rate"
    label: str  # plural noun phrase for explanations: "orders", "purchase events"
    unit: str  # count | money | rate
    settings: anomaly.Settings


def metric(name: str) -> Metric:
    """The watched metric called ``name`` (``events.<type>`` for any event type)."""
    if name.startswith("events."):
        return Metric(name, f"{name[7:]} events", "count", anomaly.Settings())
    known = {
        "dau": Metric("dau", "daily active users", "count", anomaly.Settings()),
        "orders": Metric("orders", "orders", "count", anomaly.Settings()),
        "revenue": Metric("revenue", "revenue", "money", anomaly.Settings(counts=False, floor_rel=0.05)),
        # Rates: only rises are anomalies; 0.1 percentage point offset keeps log() finite at 0.
        "dead_letter_rate": Metric("dead_letter_rate", "dead-letter rates", "rate", anomaly.Settings(
            direction="up", counts=False, offset=0.001, floor_rel=0.1)),
        "duplicate_rate": Metric("duplicate_rate", "duplicate rates", "rate", anomaly.Settings(
            direction="up", counts=False, offset=0.001, floor_rel=0.1)),
    }
    if name not in known:
        raise KeyError(f"unknown metric {name!r}; expected one of {sorted(known)} or events.<event_type>")
    return known[name]


@dataclasses.dataclass
class Facts:
    now: dt.datetime
    #: pipeline_runs rows of the last ``days``, newest first.
    runs: list[dict] = dataclasses.field(default_factory=list)
    #: run_id -> {error_type: count} for those runs.
    dead_letters_by_run: dict[str, dict[str, int]] = dataclasses.field(default_factory=dict)
    #: dbt_results rows of the newest transform run that has any.
    latest_nodes: list[dict] = dataclasses.field(default_factory=list)
    #: model name -> finished_at of its last successful build.
    last_built: dict[str, dt.datetime] = dataclasses.field(default_factory=dict)
    #: dbt_results rows of models (and tests) over the last ``days`` (cost history).
    node_history: list[dict] = dataclasses.field(default_factory=list)
    #: relation -> newest received_at / failed_at (None: empty).
    source_loaded_at: dict[str, dt.datetime | None] = dataclasses.field(default_factory=dict)
    #: metric name -> [(date, value)], complete days only.
    series: dict[str, list[tuple[dt.date, float]]] = dataclasses.field(default_factory=dict)
    #: business_metrics rows (date, dau, revenue, orders, aov) over the series range.
    business_days: list[dict] = dataclasses.field(default_factory=list)
    schema_drift: list[dict] = dataclasses.field(default_factory=list)
    null_rates: list[dict] = dataclasses.field(default_factory=list)
    #: Per-minute counts of the streaming job (latest pane per window), when it runs.
    stream_minutes: list[dict] | None = None
    #: API cost history per query name (from the API's own database; see graphql_site.monitoring).
    api_costs: list[dict] = dataclasses.field(default_factory=list)
    #: Production: bytes and slot time per day, component and query name from BigQuery's
    #: INFORMATION_SCHEMA.JOBS, by the jobs' labels (``strata_monitor.cost.bigquery_jobs_sql``).
    bigquery_jobs: list[dict] = dataclasses.field(default_factory=list)
    #: What could not be read, and why.
    notes: list[str] = dataclasses.field(default_factory=list)
    #: Verdicts already computed (the rules and the report judge the same series).
    cache: dict = dataclasses.field(default_factory=dict, repr=False)


def judged(facts: Facts, name: str, k: float, min_history_days: int):
    """(metric, settings, verdicts) of the watched series ``name``, computed once per facts."""
    key = (name, k, min_history_days)
    if key not in facts.cache:
        m = metric(name)
        settings = dataclasses.replace(m.settings, k=k, min_history_days=min_history_days)
        facts.cache[key] = (m, settings, anomaly.detect(facts.series[name], settings))
    return facts.cache[key]


Rows = Callable[[Any, dict], list]


def _safe(facts: Facts, what: str, rows: Rows, statement, params: dict | None = None) -> list[dict] | None:
    try:
        return [dict(r._mapping) for r in rows(statement, params or {})]
    except Exception as exc:  # noqa: BLE001 - a missing table is a note, not a crash
        text = str(getattr(exc, "orig", None) or exc).splitlines()[0][:200]
        facts.notes.append(f"{what}: not available ({text})")
        log.debug("fact %s unavailable", what, exc_info=True)
        return None


def _utc(value):
    if isinstance(value, dt.datetime) and value.tzinfo is None:
        return value.replace(tzinfo=dt.timezone.utc)
    return value


def load(rows: Rows, now: dt.datetime | None = None, *, days: int = 120,
         api_costs: list[dict] | None = None) -> Facts:
    """Read every fact the report needs; ``days`` of history for series and run history."""
    now = now or dt.datetime.now(dt.timezone.utc)
    facts = Facts(now=now, api_costs=list(api_costs or []))
    since = now - dt.timedelta(days=days)
    today = now.date()

    # ---- runs
    r = pipeline_runs
    runs = _safe(facts, "monitoring.pipeline_runs", rows,
                 sa.select(r).where(r.c.finished_at >= sa.bindparam("since"))
                 .order_by(r.c.started_at.desc()).limit(5000), {"since": since}) or []
    facts.runs = [{k: _utc(v) for k, v in run.items()} for run in runs]
    d = run_dead_letters
    for row in _safe(facts, "monitoring.run_dead_letters", rows,
                     sa.select(d.c.run_id, d.c.error_type, d.c.count_records)
                     .where(d.c.finished_at >= sa.bindparam("since")), {"since": since}) or []:
        facts.dead_letters_by_run.setdefault(row["run_id"], {})[row["error_type"]] = int(row["count_records"])

    # ---- dbt nodes
    n = dbt_results
    latest = sa.select(sa.func.max(n.c.run_id)).where(n.c.finished_at >= sa.bindparam("since")).scalar_subquery()
    facts.latest_nodes = _safe(facts, "monitoring.dbt_results", rows,
                               sa.select(n).where(n.c.run_id == latest, n.c.finished_at >= sa.bindparam("since")),
                               {"since": since}) or []
    built = _safe(facts, "monitoring.dbt_results (builds)", rows,
                  sa.select(n.c.name, sa.func.max(n.c.finished_at).label("finished_at"))
                  .where(n.c.resource_type == "model", n.c.status == "success").group_by(n.c.name)) or []
    facts.last_built = {b["name"]: _utc(b["finished_at"]) for b in built}
    history_since = now - dt.timedelta(days=min(days, 30))
    facts.node_history = [{k: _utc(v) for k, v in h.items()} for h in _safe(
        facts, "monitoring.dbt_results (history)", rows,
        sa.select(n.c.run_id, n.c.finished_at, n.c.unique_id, n.c.resource_type, n.c.name, n.c.status,
                  n.c.execution_s, n.c.bytes_scanned, n.c.bytes_billed, n.c.slot_ms, n.c.cost_source)
        .where(n.c.finished_at >= sa.bindparam("since"), n.c.resource_type.in_(["model", "test"]))
        .order_by(n.c.finished_at), {"since": history_since}) or []]

    # ---- freshness of the sources (partition-pruned where the table is partitioned)
    e = raw_events
    for relation, statement, params in (
            ("raw.events", sa.select(sa.func.max(e.c.received_at).label("at"))
             .where(e.c.event_date >= sa.bindparam("recent")), {"recent": today - dt.timedelta(days=7)}),
            ("raw.users", sa.select(sa.func.max(raw_users.c.received_at).label("at")), {}),
            ("raw.dead_letters", sa.select(sa.func.max(raw_dead_letters.c.failed_at).label("at"))
             .where(raw_dead_letters.c.failed_at >= sa.bindparam("since")), {"since": since})):
        found = _safe(facts, relation, rows, statement, params)
        facts.source_loaded_at[relation] = _utc(found[0]["at"]) if found else None

    # ---- daily series (complete days: before today, UTC)
    start, end = today - dt.timedelta(days=days), today - dt.timedelta(days=1)
    em = event_metrics
    per_type = _safe(facts, "curated.event_metrics", rows,
                     sa.select(em.c.event_type, em.c.date, em.c.count_events)
                     .where(em.c.date.between(sa.bindparam("start"), sa.bindparam("end"))),
                     {"start": start, "end": end}) or []
    if per_type:
        # Up to the last day with any event: later days are not loaded yet (a freshness matter,
        # mart_sla), not days without events.
        first_day, last_day = min(row["date"] for row in per_type), max(row["date"] for row in per_type)
        all_days = [first_day + dt.timedelta(days=i) for i in range((last_day - first_day).days + 1)]
        by_type: dict[str, dict[dt.date, float]] = {}
        for row in per_type:
            by_type.setdefault(row["event_type"], {})[row["date"]] = float(row["count_events"])
        # A day without a type's events is a zero, not a gap (event_metrics has no zero rows).
        for event_type, values in sorted(by_type.items()):
            facts.series[f"events.{event_type}"] = [(day, values.get(day, 0.0)) for day in all_days
                                                    if day >= min(values)]
        bm = business_metrics
        facts.business_days = _safe(
            facts, "mart.business_metrics", rows,
            sa.select(bm.c.date, bm.c.dau, bm.c.revenue, bm.c.orders, bm.c.aov)
            .where(bm.c.date.between(sa.bindparam("start"), sa.bindparam("end"))).order_by(bm.c.date),
            {"start": first_day, "end": end}) or []
        for name in ("dau", "orders", "revenue"):
            facts.series[name] = [(b["date"], float(b[name] or 0)) for b in facts.business_days]
        ps = partition_stats
        stats = _safe(facts, "monitoring.partition_stats", rows,
                      sa.select(ps.c.partition_date, ps.c.count_rows, ps.c.count_distinct_keys)
                      .where(ps.c.relation == "raw.events",
                             ps.c.partition_date.between(sa.bindparam("start"), sa.bindparam("end")))
                      .order_by(ps.c.partition_date), {"start": first_day, "end": end}) or []
        facts.series["duplicate_rate"] = [
            (s["partition_date"], 1 - s["count_distinct_keys"] / s["count_rows"])
            for s in stats if s["count_rows"] and s["count_distinct_keys"] is not None]
    daily: dict[dt.date, list[int]] = {}
    for run in facts.runs:
        if run["job"].startswith("ingest") and run.get("records_read") and run["finished_at"].date() < today:
            totals = daily.setdefault(run["finished_at"].date(), [0, 0])
            totals[0] += int(run.get("records_dead_lettered") or 0)
            totals[1] += int(run["records_read"])
    if daily:
        facts.series["dead_letter_rate"] = sorted((day, dead / read) for day, (dead, read) in daily.items())

    # ---- schema drift, null rates
    facts.schema_drift = [{k: _utc(v) for k, v in row.items()} for row in _safe(
        facts, "monitoring.schema_drift", rows, sa.select(schema_drift)) or []]
    nr = null_rates
    facts.null_rates = _safe(facts, "monitoring.null_rates", rows,
                             sa.select(nr.c.relation, nr.c.partition_date, nr.c.column_name, nr.c.count_rows,
                                       nr.c.count_nulls)
                             .where(nr.c.partition_date >= sa.bindparam("recent"))
                             .order_by(nr.c.relation, nr.c.column_name, nr.c.partition_date),
                             {"recent": today - dt.timedelta(days=14)}) or []

    # ---- streaming per-minute counts, when the streaming job writes them
    c = event_counts_per_minute
    found = _safe(facts, "raw.event_counts_per_minute (streaming)", rows,
                  sa.select(c).where(c.c.window_start >= sa.bindparam("recent")).order_by(c.c.emitted_at),
                  {"recent": now - dt.timedelta(hours=3)})
    if found is not None:
        latest_pane: dict[tuple, dict] = {}
        for row in found:  # ordered by emitted_at: a later pane replaces an earlier one
            latest_pane[(row["window_start"], row["event_type"])] = {k: _utc(v) for k, v in row.items()}
        facts.stream_minutes = sorted(latest_pane.values(), key=lambda p: (p["window_start"], p["event_type"]))
    return facts

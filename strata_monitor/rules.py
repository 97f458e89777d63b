"""The alert rules: defaults shipped here, overridable in the Django admin, evaluated on facts.

=====================  ========  ====================================================================
rule                   severity  fires when
=====================  ========  ====================================================================
``pipeline_failure``   critical  the latest run of a job (ingest, transform) failed
``dbt_test_failure``   critical  a data or unit test failed in the latest transform run
``mart_sla``           critical  a mart was last built longer ago than its SLA, or the newest raw
                                 event was received longer ago than the source SLA
``anomaly``            warning   a watched daily series (event volume per type, DAU, revenue,
                                 orders, dead-letter and duplicate rates) is anomalous
``dead_letter_rate``   warning   the latest ingest run dead-lettered more than the threshold
``cost_spike``         warning   a dbt model or API query scanned more than ``factor`` x its usual
``schema_drift``       info      a key of properties / context / extra appeared that the contract
                                 does not declare
``new_source``         info      an event type the contract does not declare, or a new ingest path
=====================  ========  ====================================================================

An override (``graphql_site.monitoring.models.AlertRule``) can switch a rule off, change its
severity and replace any of its parameters; :func:`validate_override` is the one check both the
admin and ``strata check`` apply, so an override that is stored is always usable.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Callable, Iterable

from strata_core import contract
from strata_monitor import anomaly, cost
from strata_monitor.facts import MARTS, Facts, judged

SEVERITIES = ("critical", "warning", "info")


@dataclasses.dataclass(frozen=True)
class Alert:
    severity: str
    rule: str
    subject: str
    message: str
    #: What identifies "the same alert" for deduplication (rule, subject and, for a day, the day).
    fingerprint: str = ""

    def as_json(self) -> dict:
        return {"severity": self.severity, "rule": self.rule, "subject": self.subject, "message": self.message}


@dataclasses.dataclass(frozen=True)
class Param:
    name: str
    kind: type  # int, float, list, dict
    default: object
    help: str

    def check(self, value) -> object:
        """``value`` if it fits, else ValueError naming the parameter and what is accepted."""
        if self.kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, self.kind) or isinstance(value, bool):
            raise ValueError(f"parameter {self.name!r} must be {self.kind.__name__} ({self.help}); got {value!r}")
        if self.kind in (int, float) and value < 0:
            raise ValueError(f"parameter {self.name!r} must be >= 0; got {value!r}")
        return value


@dataclasses.dataclass(frozen=True)
class Rule:
    name: str
    severity: str
    description: str
    params: tuple[Param, ...]
    #: (facts, params) -> (subject, message, key) for each open alert; key tells apart alerts
    #: of one subject (a run id, a day).
    evaluate: Callable[[Facts, dict], Iterable[tuple[str, str, str]]]

    @property
    def defaults(self) -> dict:
        return {p.name: p.default for p in self.params}


@dataclasses.dataclass(frozen=True)
class EffectiveRule:
    rule: Rule
    severity: str
    enabled: bool
    params: dict

    @property
    def name(self) -> str:
        return self.rule.name


def _ago(now: dt.datetime, then: dt.datetime) -> str:
    hours = (now - then).total_seconds() / 3600
    return f"{hours:.1f} h ago" if hours < 48 else f"{hours / 24:.1f} days ago"


def _when(moment: dt.datetime | None) -> str:
    return f"{moment:%Y-%m-%d %H:%M} UTC" if moment else "never"


# ---- the rules -------------------------------------------------------------------------------

def _pipeline_failure(facts: Facts, p: dict):
    latest: dict[str, dict] = {}
    last_ok: dict[str, dict] = {}
    for run in facts.runs:  # newest first
        latest.setdefault(run["job"], run)
        if run["status"] == "success":
            last_ok.setdefault(run["job"], run)
    for job, run in sorted(latest.items()):
        if run["status"] != "failed":
            continue
        ok = last_ok.get(job)
        reason = (run.get("error_message") or "no message").strip().splitlines()[0][:300]
        yield (job, f"the last {job} run ({run['run_id']}, finished {_when(run['finished_at'])}) failed: "
                    f"{reason}. Last success: {_when(ok['finished_at']) if ok else 'never'}.",
               run["run_id"])


def _dbt_test_failure(facts: Facts, p: dict):
    for node in facts.latest_nodes:
        if node["resource_type"] in ("test", "unit_test") and node["status"] in ("fail", "error"):
            model = (node.get("attached_node") or "").split(".")[-1] or "?"
            rows = f"{node['failures']} failing rows" if node.get("failures") else node["status"]
            message = (node.get("message") or "").strip().splitlines()
            yield (node["name"], f"{node['resource_type'].replace('_', ' ')} {node['name']} on {model}: {rows} "
                                 f"(transform run {node['run_id']})" + (f": {message[0][:200]}" if message else ""),
                   node["run_id"])


def _mart_sla(facts: Facts, p: dict):
    overrides = p["mart_sla_hours"]
    for mart in MARTS:
        sla = float(overrides.get(mart, p["sla_hours"]))
        built = facts.last_built.get(mart)
        if built is None:
            yield f"mart.{mart}", f"mart.{mart} has never been built successfully (SLA {sla:g} h)", "never"
        elif (facts.now - built).total_seconds() > sla * 3600:
            yield (f"mart.{mart}", f"mart.{mart} was last built {_ago(facts.now, built)} ({_when(built)}); "
                                   f"its SLA is {sla:g} h", "")
    received = facts.source_loaded_at.get("raw.events")
    sla = float(p["source_sla_hours"])
    if "raw.events" in facts.source_loaded_at and (
            received is None or (facts.now - received).total_seconds() > sla * 3600):
        yield ("raw.events", "no event received in the last 7 days of partitions" if received is None else
               f"the newest raw event was received {_ago(facts.now, received)} ({_when(received)}); "
               f"the source SLA is {sla:g} h", "")


def _anomaly(facts: Facts, p: dict):
    k = float(p["k"])
    watched = list(p["metrics"]) + ([name for name in facts.series if name.startswith("events.")]
                                    if p["event_types"] else [])
    for name in watched:
        series = facts.series.get(name)
        if not series:
            continue
        m, settings, verdicts = judged(facts, name, k, int(p["min_history_days"]))
        last = verdicts[-1].day
        for v in verdicts:
            if v.is_anomaly and (last - v.day).days < int(p["lookback_days"]):
                yield f"{name} {v.day}", anomaly.explain(m.label, v, m.unit, settings), v.day.isoformat()


def _dead_letter_rate(facts: Facts, p: dict):
    ingest = [r for r in facts.runs if r["job"].startswith("ingest") and r.get("records_read")]
    if not ingest:
        return
    run = ingest[0]
    rate = (run.get("records_dead_lettered") or 0) / run["records_read"]
    if rate > float(p["threshold"]):
        top = sorted(facts.dead_letters_by_run.get(run["run_id"], {}).items(), key=lambda kv: -kv[1])[:3]
        causes = ", ".join(f"{name} {n:,}" for name, n in top)
        yield (run["job"], f"{rate * 100:.1f} % of {run['records_read']:,} records were dead-lettered by "
                           f"{run['run_id']} (threshold {float(p['threshold']) * 100:g} %)"
                           + (f"; most common: {causes}" if causes else ""),
               run["run_id"])


def _cost_spike(facts: Facts, p: dict):
    factor, min_history, min_bytes = float(p["factor"]), int(p["min_history"]), float(p["min_bytes"])
    latest_run = max((h["run_id"] for h in facts.node_history), default=None)
    by_node: dict[str, list[dict]] = {}
    for h in facts.node_history:
        if h["resource_type"] == "model" and h.get("bytes_scanned") is not None:
            by_node.setdefault(h["name"], []).append(h)
    for name, history in sorted(by_node.items()):
        if history[-1]["run_id"] != latest_run:
            continue
        ratio = cost.spike([float(h["bytes_scanned"]) for h in history[:-1]], float(history[-1]["bytes_scanned"]),
                           factor=factor, min_history=min_history, min_bytes=min_bytes)
        if ratio:
            yield (f"model {name}", f"dbt model {name} scanned {cost.format_bytes(history[-1]['bytes_scanned'])} in "
                                    f"{history[-1]['run_id']}, {ratio:.1f}x its usual (median of "
                                    f"{len(history) - 1} runs; the rule fires above {factor:g}x)",
                   history[-1]["run_id"])
    by_query: dict[str, list[dict]] = {}
    for bucket in facts.api_costs:  # oldest first
        if bucket.get("executions"):
            by_query.setdefault(bucket["query_name"], []).append(bucket)
    for name, buckets in sorted(by_query.items()):
        per_run = [float(b["bytes_max"] or 0) for b in buckets]
        ratio = cost.spike(per_run[:-1], per_run[-1], factor=factor, min_history=min_history, min_bytes=min_bytes)
        if ratio:
            yield (f"api {name}", f"API query {name} scanned {cost.format_bytes(per_run[-1])} in one execution, "
                                  f"{ratio:.1f}x its usual (median of {len(per_run) - 1} earlier minutes)",
                   str(buckets[-1]["bucket_start"]))


def _baseline(facts: Facts) -> dt.datetime | None:
    """The first build of schema_drift: the keys it found are the schema as found, not drift."""
    builds = [row["loaded_at"] for row in facts.schema_drift if row.get("loaded_at")]
    return min(builds) if builds else None


def _new(row: dict, baseline, since: dt.datetime) -> bool:
    return row["loaded_at"] > baseline and row["first_seen_at"] > since


def _schema_drift(facts: Facts, p: dict):
    baseline, since = _baseline(facts), facts.now - dt.timedelta(days=float(p["lookback_days"]))
    for row in facts.schema_drift:
        if row["kind"] not in ("properties", "context", "extra") or not _new(row, baseline, since):
            continue
        declared = contract.EVENT_TYPES_BY_NAME.get(row["event_type"])
        if row["kind"] == "properties" and declared and row["name"] in declared.properties:
            continue
        where = "a top-level field (kept in extra)" if row["kind"] == "extra" else f"a key of {row['kind']}"
        yield (f"{row['kind']}.{row['name']} on {row['event_type']}",
               f"new {where}: {row['name']!r} on {row['event_type']} events, first received "
               f"{_when(row['first_seen_at'])} (e.g. event {row['example_event_id']}, value "
               f"{row.get('example_value') or 'null'}); the contract does not declare it",
               "")


def _new_source(facts: Facts, p: dict):
    baseline, since = _baseline(facts), facts.now - dt.timedelta(days=float(p["lookback_days"]))
    for row in facts.schema_drift:
        if row["first_seen_at"] <= since:
            continue
        if row["kind"] == "event_type" and row["name"] not in contract.EVENT_TYPES_BY_NAME:
            yield (f"event_type {row['name']}",
                   f"events of type {row['name']!r}, which the contract does not declare, arrive since "
                   f"{_when(row['first_seen_at'])} (e.g. event {row['example_event_id']}); declare it in "
                   "strata_core/contract.py if it is here to stay", "")
        elif row["kind"] == "ingest_source" and _new(row, baseline, since):
            yield (f"ingest_source {row['name']}",
                   f"a new ingest path {row['name']!r} writes events since {_when(row['first_seen_at'])}",
                   "")


DEFAULT_RULES: tuple[Rule, ...] = (
    Rule("pipeline_failure", "critical", "The latest run of an ingest or transform job failed.", (), _pipeline_failure),
    Rule("dbt_test_failure", "critical", "A dbt data or unit test failed in the latest transform run.", (),
         _dbt_test_failure),
    Rule("mart_sla", "critical", "A mart was last built longer ago than its SLA, or the raw events feeding "
         "the marts are older than the source SLA.", (
             Param("sla_hours", float, 26.0, "hours a mart may go without a successful build"),
             Param("mart_sla_hours", dict, {}, 'per-mart SLA in hours, e.g. {"funnel_daily": 50}'),
             Param("source_sla_hours", float, 36.0, "hours since the newest raw event was received"),
         ), _mart_sla),
    Rule("anomaly", "warning", "A watched daily series is anomalous for its weekday (strata_monitor.anomaly).", (
        Param("metrics", list, ["dau", "orders", "revenue", "dead_letter_rate", "duplicate_rate"],
              "series to watch: dau, orders, revenue, dead_letter_rate, duplicate_rate"),
        Param("event_types", int, 1, "1: also watch the daily volume of every event type; 0: not"),
        Param("k", float, anomaly.Settings.k, "how many spreads from the expected value is anomalous"),
        Param("min_history_days", int, anomaly.Settings.min_history_days, "days of history before judging"),
        Param("lookback_days", int, 3, "alert on anomalies of the last N complete days"),
    ), _anomaly),
    Rule("dead_letter_rate", "warning", "The latest ingest run dead-lettered more than the threshold.", (
        Param("threshold", float, 0.05, "share of records read (0.05 = 5 %)"),
    ), _dead_letter_rate),
    Rule("cost_spike", "warning", "A dbt model or API query scanned more than `factor` times its usual bytes.", (
        Param("factor", float, 5.0, "how many times the median of its history"),
        Param("min_history", int, 5, "earlier runs (or minutes, for the API) needed first"),
        Param("min_bytes", float, 10e6, "ignore scans smaller than this many bytes"),
    ), _cost_spike),
    Rule("schema_drift", "info", "A key of properties, context or extra appeared that the contract does not "
         "declare (the keys the first monitoring build found are the baseline).", (
             Param("lookback_days", float, 7.0, "report keys first seen in the last N days"),
         ), _schema_drift),
    Rule("new_source", "info", "An event type the contract does not declare, or a new ingest path, "
         "started sending events.", (
             Param("lookback_days", float, 7.0, "report sources first seen in the last N days"),
         ), _new_source),
)
RULES_BY_NAME = {r.name: r for r in DEFAULT_RULES}


def validate_override(name: str, severity: str | None, params: dict | None) -> dict:
    """The override's parameters, checked: unknown rules, severities and parameters, and values
    of the wrong type, raise ValueError naming what is accepted."""
    if name not in RULES_BY_NAME:
        raise ValueError(f"unknown rule {name!r}; expected one of {', '.join(RULES_BY_NAME)}")
    if severity not in (None, "", *SEVERITIES):
        raise ValueError(f"severity {severity!r}: expected one of {', '.join(SEVERITIES)}")
    rule = RULES_BY_NAME[name]
    declared = {p.name: p for p in rule.params}
    if params is None:
        return {}
    if not isinstance(params, dict):
        raise ValueError(f"parameters must be a JSON object, e.g. {rule.defaults or {}}")
    unknown = sorted(set(params) - set(declared))
    if unknown:
        raise ValueError(f"rule {name} has no parameter {', '.join(unknown)}; its parameters are "
                         f"{', '.join(declared) or 'none'}")
    return {key: declared[key].check(value) for key, value in params.items()}


def effective_rules(overrides: list[dict] | None = None) -> list[EffectiveRule]:
    """The default rules with ``overrides`` applied: ``{"name", "enabled", "severity", "params"}``
    each (the admin's rows). An invalid override is ignored in favour of the default."""
    by_name = {o["name"]: o for o in overrides or []}
    out = []
    for rule in DEFAULT_RULES:
        o = by_name.get(rule.name, {})
        try:
            params = {**rule.defaults, **validate_override(rule.name, o.get("severity"), o.get("params"))}
            severity = o.get("severity") or rule.severity
        except ValueError:
            params, severity = rule.defaults, rule.severity
        out.append(EffectiveRule(rule, severity, bool(o.get("enabled", True)), params))
    return out


def evaluate(facts: Facts, rules: list[EffectiveRule] | None = None) -> list[Alert]:
    """Every open alert, most severe first."""
    alerts = []
    for eff in rules or effective_rules():
        if not eff.enabled:
            continue
        for subject, message, key in eff.rule.evaluate(facts, eff.params):
            alerts.append(Alert(eff.severity, eff.name, subject, message,
                                fingerprint="|".join((eff.name, subject, key))))
    return sorted(alerts, key=lambda a: (SEVERITIES.index(a.severity), a.rule, a.subject))


def status(alerts: list[Alert]) -> str:
    """``critical``, ``warning`` or ``ok`` (info alerts do not change the status)."""
    for level in ("critical", "warning"):
        if any(a.severity == level for a in alerts):
            return level
    return "ok"

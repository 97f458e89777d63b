"""The health report: status, open alerts and the sections ``strata check`` prints and the
dashboards draw (freshness, tests, dead letters, anomalies, runs, cost), from one set of facts."""

from __future__ import annotations

import dataclasses
import datetime as dt
import textwrap

from strata_monitor import anomaly, cost, rules
from strata_monitor.facts import MARTS, Facts, judged


@dataclasses.dataclass
class Report:
    generated_at: dt.datetime
    status: str
    alerts: list[rules.Alert]
    freshness: list[dict]
    tests: dict
    dead_letters: dict
    anomalies: list[dict]
    runs: list[dict]
    cost: dict
    rules: list[dict]
    notes: list[str]

    def as_json(self) -> dict:
        """``status`` (ok | warning | critical), ``alerts`` ``[{severity, rule, subject, message}]``
        and the sections, JSON-ready."""
        return plain({"status": self.status, "generated_at": self.generated_at,
                       "alerts": [a.as_json() for a in self.alerts], "freshness": self.freshness,
                       "tests": self.tests, "dead_letters": self.dead_letters, "anomalies": self.anomalies,
                       "runs": self.runs, "cost": self.cost, "rules": self.rules, "notes": self.notes})


def plain(value):
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    if hasattr(value, "is_finite"):  # Decimal
        return float(value)
    return value


def build(facts: Facts, effective: list[rules.EffectiveRule] | None = None) -> Report:
    effective = effective or rules.effective_rules()
    alerts = rules.evaluate(facts, effective)
    by_name = {e.name: e for e in effective}
    return Report(
        generated_at=facts.now, status=rules.status(alerts), alerts=alerts,
        freshness=_freshness(facts, by_name["mart_sla"].params), tests=_tests(facts),
        dead_letters=_dead_letters(facts, by_name["dead_letter_rate"].params),
        anomalies=_anomalies(facts, by_name["anomaly"].params), runs=facts.runs[:10], cost=_cost(facts),
        rules=[{"name": e.name, "severity": e.severity, "enabled": e.enabled, "params": e.params,
                "description": e.rule.description} for e in effective],
        notes=list(facts.notes))


def _age_h(now: dt.datetime, then: dt.datetime | None) -> float | None:
    return None if then is None else round((now - then).total_seconds() / 3600, 2)


def _freshness(facts: Facts, p: dict) -> list[dict]:
    out = []
    for relation in ("raw.events", "raw.users", "raw.dead_letters"):
        if relation not in facts.source_loaded_at:
            continue
        at = facts.source_loaded_at[relation]
        sla = float(p["source_sla_hours"]) if relation == "raw.events" else None
        age = _age_h(facts.now, at)
        out.append({"relation": relation, "kind": "source", "loaded_at": at, "age_hours": age, "sla_hours": sla,
                    "ok": sla is None or (age is not None and age <= sla)})
    for name in sorted(facts.last_built, key=lambda n: (n not in MARTS, n)):
        at = facts.last_built[name]
        sla = float(p["mart_sla_hours"].get(name, p["sla_hours"])) if name in MARTS else None
        age = _age_h(facts.now, at)
        mart = name in MARTS
        out.append({"relation": f"mart.{name}" if mart else name, "kind": "mart" if mart else "model",
                    "name": name, "loaded_at": at, "age_hours": age, "sla_hours": sla,
                    "ok": sla is None or age <= sla})
    return out


def _tests(facts: Facts) -> dict:
    nodes = facts.latest_nodes
    tests = [n for n in nodes if n["resource_type"] in ("test", "unit_test")]
    failing = [{"name": n["name"], "model": (n.get("attached_node") or "").split(".")[-1], "status": n["status"],
                "failures": n.get("failures"), "message": (n.get("message") or "")[:300]}
               for n in tests if n["status"] in ("fail", "error")]
    return {"run_id": nodes[0]["run_id"] if nodes else None,
            "finished_at": nodes[0]["finished_at"] if nodes else None,
            "passed": sum(n["status"] == "pass" for n in tests),
            "warned": sum(n["status"] == "warn" for n in tests),
            "failed": len(failing), "failing": failing,
            "by_model": _tests_by_model(nodes)}


def _tests_by_model(nodes: list[dict]) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for n in nodes:
        if n["resource_type"] in ("test", "unit_test") and n.get("attached_node"):
            entry = out.setdefault(n["attached_node"], {"passed": 0, "failed": 0})
            entry["failed" if n["status"] in ("fail", "error") else "passed"] += 1
    return out


def _dead_letters(facts: Facts, p: dict) -> dict:
    ingest = [r for r in facts.runs if r["job"].startswith("ingest") and r.get("records_read")]
    last = None
    if ingest:
        run = ingest[0]
        by_type = facts.dead_letters_by_run.get(run["run_id"], {})
        last = {"run_id": run["run_id"], "finished_at": run["finished_at"], "read": run["records_read"],
                "dead_lettered": run.get("records_dead_lettered") or 0,
                "rate": (run.get("records_dead_lettered") or 0) / run["records_read"],
                "by_error_type": dict(sorted(by_type.items(), key=lambda kv: -kv[1]))}
    by_type_day: dict[str, dict[str, int]] = {}
    for run in facts.runs:
        for error_type, n in facts.dead_letters_by_run.get(run["run_id"], {}).items():
            day = run["finished_at"].date().isoformat()
            by_type_day.setdefault(error_type, {})
            by_type_day[error_type][day] = by_type_day[error_type].get(day, 0) + n
    return {"threshold": float(p["threshold"]), "last_run": last,
            "daily_rate": facts.series.get("dead_letter_rate", []), "by_type_day": by_type_day}


def _anomalies(facts: Facts, p: dict) -> list[dict]:
    names = list(p["metrics"]) + ([n for n in facts.series if n.startswith("events.")] if p["event_types"] else [])
    out = []
    for name in names:
        series = facts.series.get(name)
        if not series:
            continue
        m, settings, verdicts = judged(facts, name, float(p["k"]), int(p["min_history_days"]))
        last = verdicts[-1]
        out.append({
            "metric": name, "label": m.label, "unit": m.unit, "last_day": last.day, "status": last.status,
            "value": last.value, "expected": last.expected, "low": last.low, "high": last.high,
            "explanation": anomaly.explain(m.label, last, m.unit, settings),
            "flagged": [{"day": v.day, "value": v.value, "expected": v.expected,
                         "explanation": anomaly.explain(m.label, v, m.unit, settings)}
                        for v in verdicts if v.is_anomaly],
            "points": [{"day": v.day, "value": v.value, "expected": v.expected, "low": v.low, "high": v.high,
                        "status": v.status} for v in verdicts],
        })
    return out


def _cost(facts: Facts) -> dict:
    runs: dict[str, dict] = {}
    daily: dict[str, float] = {}
    sources = set()
    for h in facts.node_history:
        if h.get("bytes_scanned") is None:
            continue
        sources.add(h.get("cost_source") or "")
        run = runs.setdefault(h["run_id"], {"run_id": h["run_id"], "finished_at": h["finished_at"], "bytes": 0,
                                            "slot_ms": 0})
        run["bytes"] += int(h["bytes_scanned"])
        run["slot_ms"] += int(h.get("slot_ms") or 0)
        day = h["finished_at"].date().isoformat()
        daily[day] = daily.get(day, 0.0) + float(h["bytes_scanned"])
    api_daily: dict[str, float] = {}
    api_by_query: dict[str, dict] = {}
    for b in facts.api_costs:
        start = b["bucket_start"]
        day = start.date().isoformat() if hasattr(start, "date") else str(start)[:10]
        api_daily[day] = api_daily.get(day, 0.0) + float(b.get("bytes_total") or 0)
        q = api_by_query.setdefault(b["query_name"], {"query_name": b["query_name"], "executions": 0, "bytes": 0,
                                                       "bytes_max": 0, "duration_ms": 0.0})
        q["executions"] += int(b.get("executions") or 0)
        q["bytes"] += int(b.get("bytes_total") or 0)
        q["bytes_max"] = max(q["bytes_max"], int(b.get("bytes_max") or 0))
        q["duration_ms"] += float(b.get("duration_ms_total") or 0)
    days = sorted(set(daily) | set(api_daily))
    latest = max(runs.values(), key=lambda r: r["run_id"]) if runs else None
    top = sorted((h for h in facts.node_history if latest and h["run_id"] == latest["run_id"]
                  and h["resource_type"] == "model" and h.get("bytes_scanned")),
                 key=lambda h: -h["bytes_scanned"])[:8]
    return {
        "source": "bigquery" if sources == {"bigquery"} else ("duckdb_estimate" if sources else None),
        "price_per_tib_usd": cost.PRICE_PER_TIB_USD,
        "last_build": None if latest is None else {**latest, "usd": cost.usd_for_bytes(latest["bytes"])},
        "top_models": [{"name": h["name"], "bytes": h["bytes_scanned"], "execution_s": h["execution_s"]} for h in top],
        "builds": sorted(runs.values(), key=lambda r: r["run_id"]),
        "daily": [{"day": d, "dbt_bytes": daily.get(d, 0.0), "api_bytes": api_daily.get(d, 0.0),
                   "usd": cost.usd_for_bytes(daily.get(d, 0.0) + api_daily.get(d, 0.0))} for d in days],
        "api_queries": sorted(api_by_query.values(), key=lambda q: -q["bytes"]),
        "bigquery_jobs": facts.bigquery_jobs,
    }


# ---- text ------------------------------------------------------------------------------------

def _fmt_age(hours: float | None) -> str:
    if hours is None:
        return "never"
    return f"{hours:.1f} h ago" if hours < 48 else f"{hours / 24:.1f} days ago"


def render_text(report: Report, width: int = 100) -> str:
    """One screen: the status, every open alert, then a line or a few per section."""
    counts = {s: sum(a.severity == s for a in report.alerts) for s in rules.SEVERITIES}
    lines = [f"Strata health: {report.status.upper()}  ({report.generated_at:%Y-%m-%d %H:%M} UTC)  "
             f"{counts['critical']} critical, {counts['warning']} warning, {counts['info']} info"]
    if report.alerts:
        lines.append("Alerts")
        for a in report.alerts:
            head = f"  {a.severity.upper():<8} {a.rule:<17} "
            lines += textwrap.wrap(f"{a.subject}: {a.message}", width, initial_indent=head,
                                   subsequent_indent=" " * len(head))
    lines.append("Freshness")
    stale = [f for f in report.freshness if not f["ok"]]
    shown = [f for f in report.freshness if f["kind"] in ("source", "mart")]
    for f in shown:
        verb = "received" if f["kind"] == "source" else "built"
        sla = f"SLA {f['sla_hours']:g} h" if f["sla_hours"] else "no SLA"
        stale_mark = "" if f["ok"] else "  STALE"
        lines.append(f"  {f['relation']:<22} {verb} {_fmt_age(f['age_hours']):<14} ({sla}){stale_mark}")
    if not shown:
        lines.append("  nothing built yet: run `strata ingest batch` and `strata transform`")
    models = [f for f in report.freshness if f["kind"] == "model"]
    if models:
        oldest = max(models, key=lambda f: f["age_hours"] or 0)
        lines.append(f"  {len(models)} other models; oldest build {_fmt_age(oldest['age_hours'])} "
                     f"({oldest['relation']})"
                     + (f"; {len(stale)} stale" if stale else ""))
    t = report.tests
    if t["run_id"]:
        lines.append(f"Tests      last transform {t['finished_at']:%Y-%m-%d %H:%M} UTC: {t['passed']} passed, "
                     f"{t['failed']} failed")
    else:
        lines.append("Tests      no transform run recorded")
    d = report.dead_letters
    if d["last_run"]:
        last = d["last_run"]
        top = ", ".join(f"{k} {v:,}" for k, v in list(last["by_error_type"].items())[:3])
        lines.append(f"Dead letters  last ingest: {last['rate'] * 100:.1f} % of {last['read']:,} records "
                     f"(threshold {d['threshold'] * 100:g} %){'; top: ' + top if top else ''}")
    else:
        lines.append("Dead letters  no ingest run recorded")
    judged = [a for a in report.anomalies if a["status"] in ("normal", "anomaly")]
    flagged = [a for a in report.anomalies if a["status"] == "anomaly"]
    waiting = [a for a in report.anomalies if a["status"] == "insufficient_history"]
    lines.append(f"Anomalies  {len(report.anomalies)} series watched: {len(judged)} judged on their last day"
                 f" ({len(flagged)} anomalous)" + (f", {len(waiting)} without enough history yet" if waiting else ""))
    lines.append("Runs")
    for run in report.runs[:5]:
        extra = f"  {run['records_per_s']:,.0f} records/s" if run.get("records_per_s") else ""
        lines.append(f"  {run['job']:<13} {run['status']:<8} {run['finished_at']:%Y-%m-%d %H:%M}  "
                     f"{run['duration_s']:.1f} s{extra}")
    if not report.runs:
        lines.append("  none recorded")
    c = report.cost
    if c["last_build"]:
        what = "BigQuery bytes processed" if c["source"] == "bigquery" else "estimate of BigQuery bytes, from DuckDB"
        week = sum(day["usd"] for day in c["daily"][-7:])
        lines.append(f"Cost       last build scanned {cost.format_bytes(c['last_build']['bytes'])} ({what}) = "
                     f"${c['last_build']['usd']:.4f} at ${c['price_per_tib_usd']:g}/TiB; last 7 days ${week:.4f}")
    jobs = c.get("bigquery_jobs") or []
    if jobs:
        billed = sum(float(j.get("bytes_billed") or 0) for j in jobs)
        slot_h = sum(float(j.get("slot_ms") or 0) for j in jobs) / 3_600_000
        lines.append(f"BigQuery   {sum(int(j.get('jobs') or 0) for j in jobs):,} labelled jobs: "
                     f"{cost.format_bytes(billed)} billed (${cost.usd_for_bytes(billed):.2f}), {slot_h:.1f} slot-hours")
    for note in report.notes[:3]:
        lines += textwrap.wrap(note, width, initial_indent="Note: ", subsequent_indent="      ")
    return "\n".join(lines)

"""``strata check [--json]``: the platform's health on one screen; exit 1 on any open critical alert.

Reads the monitoring tables and the marts (``strata_monitor.facts``), evaluates the alert rules
(defaults, with the overrides saved in the Django admin) and prints the report. Open alerts go to
the log and, when ``STRATA_ALERT_WEBHOOK_URL`` (or ``--webhook``) is set, to a Slack-compatible
webhook, deduplicated and rate-limited (``strata_monitor.notify``).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import pathlib
import sys

REPO = pathlib.Path(__file__).resolve().parents[2]
log = logging.getLogger(__name__)


def register(sub) -> None:
    p = sub.add_parser("check", help="health report: freshness, tests, dead letters, anomalies, runs, cost",
                       description="Evaluate the alert rules on the monitoring tables and print a one-screen "
                       "health report. Exit status 1 when a critical alert is open, 0 otherwise.")
    p.add_argument("--json", action="store_true",
                   help="print one JSON object: status (ok|warning|critical), alerts [{severity, rule, "
                   "subject, message}] and the report's sections")
    p.add_argument("--warehouse", choices=("duckdb", "bigquery"),
                   default=os.environ.get("STRATA_WAREHOUSE", "duckdb"),
                   help="where the monitoring tables live (default: $STRATA_WAREHOUSE, else duckdb); "
                   "bigquery reads STRATA_BQ_PROJECT")
    p.add_argument("--webhook", metavar="URL", help="Slack-compatible webhook (default $STRATA_ALERT_WEBHOOK_URL)")
    p.add_argument("--no-notify", action="store_true", help="print the report only: no log lines, no webhook")
    p.add_argument("--days", type=int, default=120, help="days of history to read (default 120)")
    p.set_defaults(func=run)


def duckdb_rows():
    """``rows(statement, params)`` on the local warehouse, read-only (SQLAlchemy Core)."""
    import sqlalchemy as sa

    from strata import warehouse
    from strata_core import duckdb_config

    path = warehouse.init()
    # Read-only and offline like every reader, and pointed at this home's lake (the raw and
    # monitoring views read it, strata_core.duckdb_config).
    engine = sa.create_engine(f"duckdb:///{path}", poolclass=sa.pool.StaticPool,
                              connect_args={"read_only": True, "config": duckdb_config.read_only_config()})
    sa.event.listen(engine, "connect", lambda dbapi_con, _record: duckdb_config.secure(dbapi_con, path.parent / "lake"))

    def rows(statement, params):
        with engine.connect() as conn:
            return conn.execute(statement, params).fetchall()

    return rows


def bigquery_rows():  # pragma: no cover - needs BigQuery
    import sqlalchemy as sa

    project = os.environ.get("STRATA_BQ_PROJECT")
    if not project:
        raise ValueError("--warehouse bigquery needs STRATA_BQ_PROJECT (the project of the datasets)")
    engine = sa.create_engine(f"bigquery://{project}")
    translate = {layer: os.environ.get(f"STRATA_BQ_DATASET_{layer.upper()}", layer)
                 for layer in ("raw", "staging", "curated", "mart", "monitoring")}

    def rows(statement, params):
        with engine.connect() as conn:
            return conn.execution_options(schema_translate_map=translate).execute(statement, params).fetchall()

    return rows


def bigquery_jobs(days: int) -> tuple[list[dict], str | None]:  # pragma: no cover - needs BigQuery
    """Bytes and slot time per day and query name from INFORMATION_SCHEMA.JOBS (by label).

    Needs ``bigquery.jobs.listAll`` on the project; the region comes from STRATA_BQ_LOCATION
    (``EU`` -> ``region-eu``)."""
    try:
        from google.cloud import bigquery

        from strata_monitor import cost

        region = "region-" + os.environ.get("STRATA_BQ_LOCATION", "EU").lower()
        client = bigquery.Client(project=os.environ["STRATA_BQ_PROJECT"])
        config = bigquery.QueryJobConfig(
            query_parameters=[bigquery.ScalarQueryParameter("days", "INT64", days)],
            labels=cost.job_labels("monitoring", "strata_check"))
        return [dict(row) for row in client.query(cost.bigquery_jobs_sql(region), job_config=config).result()], None
    except Exception as exc:  # noqa: BLE001
        return [], f"INFORMATION_SCHEMA.JOBS unavailable ({str(exc).splitlines()[0][:160]})"


def site_state(days: int = 30) -> tuple[list[dict], list[dict], str | None]:
    """(alert rule overrides, API cost history, a note when the API's database is unreadable).

    Both live in the Django site's database (the admin edits the rules; the API records what its
    queries cost), so this sets Django up read-only: no migrations, nothing written."""
    try:
        if str(REPO) not in sys.path:
            sys.path.insert(0, str(REPO))
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "graphql_site.settings.local")
        import django

        django.setup()
        from graphql_site.monitoring import costs
        from graphql_site.monitoring.models import AlertRule

        overrides = [rule.as_override() for rule in AlertRule.objects.all()]
        since = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=days)
        return overrides, costs.history(since), None
    except Exception as exc:  # noqa: BLE001 - the report must still come out
        first = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
        return [], [], f"admin rule overrides and API costs unavailable, defaults used ({first})"


def _alert_log(path: pathlib.Path, to_stderr: bool) -> None:
    """The log alerts go to: ``$STRATA_HOME/monitoring/alerts.log``, and stderr in --json mode
    (the text report already shows them)."""
    from strata_monitor import notify

    logger = notify.log
    logger.setLevel(logging.INFO)
    logger.propagate = False
    path.parent.mkdir(parents=True, exist_ok=True)
    handlers = [logging.FileHandler(path, encoding="utf-8")]
    if to_stderr:
        handlers.append(logging.StreamHandler(sys.stderr))
    for handler in handlers:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logger.addHandler(handler)


def run(args) -> int:
    from strata_core import paths
    from strata_monitor import facts as facts_mod
    from strata_monitor import notify, report, rules

    if args.warehouse == "duckdb":
        paths.use_offline_env()
    try:
        rows = duckdb_rows() if args.warehouse == "duckdb" else bigquery_rows()
    except ValueError as exc:
        print(f"strata check: {exc}", file=sys.stderr)
        return 2
    overrides, api_costs, note = site_state()
    facts = facts_mod.load(rows, days=args.days, api_costs=api_costs)
    if note:
        facts.notes.append(note)
    if args.warehouse == "bigquery":
        facts.bigquery_jobs, jobs_note = bigquery_jobs(days=7)
        if jobs_note:
            facts.notes.append(jobs_note)
    result = report.build(facts, rules.effective_rules(overrides))
    if args.json:
        body = result.as_json()
        for series in body["anomalies"]:
            series.pop("points", None)  # the dashboards draw them; a shell does not need them
        print(json.dumps(body))
    else:
        print(report.render_text(result))
    if not args.no_notify:
        _alert_log(paths.home() / "monitoring" / "alerts.log", to_stderr=args.json)
        try:
            notifier = notify.Notifier(args.webhook)
            outcome = notifier.notify(result.alerts)
        except ValueError as exc:
            print(f"strata check: {exc}", file=sys.stderr)
            return 2
        if not notifier.webhook_url:
            if result.alerts:
                n = len(result.alerts)
                print(f"strata check: {n} alert{'' if n == 1 else 's'} logged to {paths.home() / 'monitoring'}; "
                      f"no webhook set (--webhook URL or ${notify.WEBHOOK_ENV})", file=sys.stderr)
        elif outcome.sent or outcome.rate_limited or outcome.failed or outcome.resolved:
            print(f"strata check: webhook: {len(outcome.sent)} sent, {len(outcome.duplicates)} already sent, "
                  f"{len(outcome.rate_limited)} held by the rate limit, {len(outcome.failed)} failed, "
                  f"{len(outcome.resolved)} resolved", file=sys.stderr)
    return 1 if result.status == "critical" else 0

"""Failure alerts: every task's ``on_failure_callback``.

:func:`notify_failure` posts one JSON object to the webhook URL in the Airflow Variable
``strata_alert_webhook_url`` (else ``$STRATA_ALERT_WEBHOOK_URL``); without a URL it only logs.
The webhook is the monitoring alerts' own (``strata_monitor.notify``, the same
``STRATA_ALERT_WEBHOOK_URL``), so the body is Slack-compatible: a ``text`` line in the shape of
a ``critical`` ``pipeline_failure`` alert, plus the structured fields ``{"source": "airflow",
"severity": "critical", "rule": "pipeline_failure", "dag_id", "task_id", "run_id", "try_number",
"logical_date", "log_url", "error"}``. An alert that cannot be delivered is
logged, never raised: the task already failed, and Airflow's own state is the record.
"""

from __future__ import annotations

import json
import logging
import os
import urllib.request

log = logging.getLogger(__name__)
VARIABLE = "strata_alert_webhook_url"
ENV = "STRATA_ALERT_WEBHOOK_URL"


def webhook_url() -> str | None:
    try:
        from airflow.sdk import Variable

        url = Variable.get(VARIABLE, default=None)
    except Exception:  # noqa: BLE001 - no metadata DB / API server reachable: fall back to env
        url = None
    return url or os.environ.get(ENV) or None


def alert_body(context) -> dict:
    ti = context.get("task_instance") or context.get("ti")
    logical_date = context.get("logical_date")
    dag_id, task_id = getattr(ti, "dag_id", None), getattr(ti, "task_id", None)
    error = str(context.get("exception") or "")
    return {
        # The shape of strata_monitor.notify.slack_payload's text (this venv has no Strata code).
        "text": f":rotating_light: [CRITICAL] pipeline_failure: {dag_id}.{task_id}\n{error or 'failed'}",
        "source": "airflow",
        "severity": "critical",
        "rule": "pipeline_failure",
        "dag_id": dag_id,
        "task_id": task_id,
        "run_id": context.get("run_id") or getattr(ti, "run_id", None),
        "try_number": getattr(ti, "try_number", None),
        "logical_date": logical_date.isoformat() if logical_date is not None else None,
        "log_url": getattr(ti, "log_url", None),
        "error": error,
    }


def notify_failure(context) -> None:
    body = alert_body(context)
    url = webhook_url()
    log.error("strata task failed: %s", body)
    if not url:
        return
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()
    except Exception:  # noqa: BLE001 - see module doc
        log.exception("could not deliver the failure alert to %s", url)

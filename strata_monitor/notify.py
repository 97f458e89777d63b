"""Alerts to the log and to a Slack-compatible webhook, deduplicated and rate-limited.

Standard library (and ``strata_core.paths``) only, so anything can import it alone:
:func:`send_alert` posts one alert, :class:`Notifier` a whole evaluation.

* **Webhook**: ``POST`` of ``{"text": ..., "blocks": [...]}`` (Slack incoming webhooks;
  Mattermost, Rocket.Chat and Teams' Slack-compatible endpoints take the same). URL from the
  argument or ``STRATA_ALERT_WEBHOOK_URL``; without one, alerts go to the log only.
* **Deduplicated**: an alert is identified by its fingerprint (rule, subject, day). While it stays
  open it is posted once, and again only after ``renotify_after_s`` (default 6 h) or when its
  severity changes. When an alert that was posted is no longer open, one "resolved" message
  follows.
* **Rate-limited**: at most ``max_per_minute`` posts a minute (default 10); alerts beyond that
  are summarised in one message and stay pending, so the next evaluation sends them.
* **State**: a SQLite file (default ``$STRATA_HOME/monitoring/alerts.sqlite3``, private to its
  owner), safe for concurrent ``strata check`` runs.

A webhook that fails (timeout, HTTP error) is logged and the alert stays pending; notifying never
raises.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import pathlib
import sqlite3
import time
import urllib.error
import urllib.request
from typing import Iterable, Iterator

log = logging.getLogger("strata.alerts")

WEBHOOK_ENV = "STRATA_ALERT_WEBHOOK_URL"
_EMOJI = {"critical": ":rotating_light:", "warning": ":warning:", "info": ":information_source:",
          "resolved": ":white_check_mark:"}
_LEVELS = {"critical": logging.ERROR, "warning": logging.WARNING, "info": logging.INFO}
_ORDER = {"critical": 0, "warning": 1, "info": 2}


@dataclasses.dataclass(frozen=True)
class Notice:
    """What :class:`Notifier` needs of an alert (``strata_monitor.rules.Alert`` fits)."""

    severity: str
    rule: str
    subject: str
    message: str
    fingerprint: str = ""

    @property
    def key(self) -> str:
        return self.fingerprint or f"{self.rule}|{self.subject}"


@dataclasses.dataclass
class Outcome:
    sent: list[str] = dataclasses.field(default_factory=list)
    duplicates: list[str] = dataclasses.field(default_factory=list)
    rate_limited: list[str] = dataclasses.field(default_factory=list)
    resolved: list[str] = dataclasses.field(default_factory=list)
    failed: list[str] = dataclasses.field(default_factory=list)


def default_state_path() -> pathlib.Path:
    from strata_core import paths  # standard library only, like this module

    return paths.home_path() / "monitoring" / "alerts.sqlite3"


def slack_payload(notice: Notice, status: str | None = None) -> dict:
    status = status or notice.severity
    title = f"{_EMOJI.get(status, '')} [{status.upper()}] {notice.rule}: {notice.subject}".strip()
    return {"text": f"{title}\n{notice.message}",
            "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": f"*{title}*\n{notice.message}"}}]}


class Notifier:
    def __init__(self, webhook_url: str | None = None, state_path: pathlib.Path | str | None = None, *,
                 renotify_after_s: float = 6 * 3600, max_per_minute: int = 10, timeout_s: float = 5.0,
                 clock=time.time):
        self.webhook_url = webhook_url if webhook_url is not None else os.environ.get(WEBHOOK_ENV) or None
        if self.webhook_url and not self.webhook_url.startswith(("https://", "http://")):
            raise ValueError(f"webhook URL {self.webhook_url!r} must start with https:// (or http://)")
        self.state_path = pathlib.Path(state_path) if state_path else default_state_path()
        self.renotify_after_s, self.max_per_minute, self.timeout_s = renotify_after_s, max_per_minute, timeout_s
        self.clock = clock

    # ---- state
    @contextlib.contextmanager
    def _state(self) -> Iterator[sqlite3.Connection]:
        self.state_path.parent.mkdir(parents=True, exist_ok=True)
        new = not self.state_path.exists()
        con = sqlite3.connect(self.state_path, timeout=30, isolation_level=None)
        if new:
            os.chmod(self.state_path, 0o600)
        try:
            con.execute("begin immediate")  # one evaluation at a time decides what to send
            # source: "evaluation" (a complete set of open alerts, which can resolve) or "direct".
            con.execute("create table if not exists sent (fingerprint text primary key, severity text, "
                        "rule text, subject text, message text, sent_at real, source text)")
            con.execute("create table if not exists posts (at real)")
            yield con
            con.execute("commit")
        except BaseException:
            con.execute("rollback")
            raise
        finally:
            con.close()

    def _budget(self, con: sqlite3.Connection) -> int:
        now = self.clock()
        con.execute("delete from posts where at < ?", (now - 60,))
        used = con.execute("select count(*) from posts").fetchone()[0]
        return max(0, self.max_per_minute - used)

    # ---- sending
    def _post(self, con: sqlite3.Connection | None, payload: dict) -> bool:
        if not self.webhook_url:
            return True
        request = urllib.request.Request(self.webhook_url, data=json.dumps(payload).encode(), method="POST",
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                response.read()
        except (urllib.error.URLError, OSError, ValueError) as exc:
            log.warning("alert webhook failed (%s); the alert stays pending", exc)
            return False
        if con is not None:
            con.execute("insert into posts values (?)", (self.clock(),))
        return True

    def notify(self, alerts: Iterable, *, resolve: bool = True) -> Outcome:
        """Log every open alert; post the new ones (and resolutions) to the webhook.

        ``alerts`` is the complete set of open alerts of one evaluation (objects with severity,
        rule, subject, message, fingerprint). ``resolve=False`` for a partial set (one alert
        from a callback), which must not resolve the others."""
        notices = [a if isinstance(a, Notice) else Notice(a.severity, a.rule, a.subject, a.message,
                                                          getattr(a, "fingerprint", "")) for a in alerts]
        outcome = Outcome()
        for n in notices:
            log.log(_LEVELS.get(n.severity, logging.WARNING), "[%s] %s: %s: %s", n.severity.upper(), n.rule,
                    n.subject, n.message)
        try:
            with self._state() as con:
                self._send(con, notices, resolve, outcome)
        except sqlite3.Error as exc:
            log.warning("alert state %s unusable (%s): posting without deduplication", self.state_path, exc)
            for n in notices:
                (outcome.sent if self._post(None, slack_payload(n)) else outcome.failed).append(n.key)
        return outcome

    def _send(self, con: sqlite3.Connection, notices: list[Notice], resolve: bool, outcome: Outcome) -> None:
        now = self.clock()
        sent = {row[0]: row for row in con.execute("select fingerprint, severity, sent_at, source from sent")}
        due = []
        for n in notices:
            previous = sent.get(n.key)
            if previous and previous[1] == n.severity and now - previous[2] < self.renotify_after_s:
                outcome.duplicates.append(n.key)
            else:
                due.append(n)
        due.sort(key=lambda n: _ORDER.get(n.severity, len(_ORDER)))  # most severe first
        budget = self._budget(con)
        over = len(due) > budget
        send_now = due[:max(0, budget - 1)] if over else due
        for n in send_now:
            if self._post(con, slack_payload(n)):
                con.execute("insert or replace into sent values (?, ?, ?, ?, ?, ?, ?)",
                            (n.key, n.severity, n.rule, n.subject, n.message, now,
                             "evaluation" if resolve else "direct"))
                outcome.sent.append(n.key)
            else:
                outcome.failed.append(n.key)
        if over:
            held = due[len(send_now):]
            outcome.rate_limited += [n.key for n in held]
            if budget > 0:
                names = "; ".join(f"{n.severity} {n.rule}: {n.subject}" for n in held[:10])
                summary = Notice("warning", "rate_limit", f"{len(held)} more alerts",
                                 f"Held back by the rate limit of {self.max_per_minute} a minute; they are sent "
                                 f"on the next check: {names}{' ...' if len(held) > 10 else ''}")
                self._post(con, slack_payload(summary))
        if resolve:
            open_keys = {n.key for n in notices}
            for key, row in sent.items():
                if key in open_keys or row[3] != "evaluation":
                    continue
                stored = con.execute("select severity, rule, subject, message from sent where fingerprint = ?",
                                     (key,)).fetchone()
                notice = Notice(stored[0], stored[1], stored[2], f"resolved (was: {stored[3]})", key)
                if self._budget(con) and self._post(con, slack_payload(notice, "resolved")):
                    con.execute("delete from sent where fingerprint = ?", (key,))
                    outcome.resolved.append(key)
                    log.info("[RESOLVED] %s: %s", stored[1], stored[2])


def send_alert(severity: str, rule: str, subject: str, message: str, *, webhook_url: str | None = None,
               state_path: str | None = None, fingerprint: str = "") -> Outcome:
    """Post one alert to the log and the webhook, deduplicated and rate-limited like every other.

    For callers outside ``strata check``, e.g. an Airflow ``on_failure_callback``::

        from strata_monitor.notify import send_alert
        send_alert("critical", "pipeline_failure", f"{dag_id}.{task_id}", str(exception))
    """
    if severity not in _LEVELS:
        raise ValueError(f"severity {severity!r}: expected critical, warning or info")
    return Notifier(webhook_url, state_path).notify([Notice(severity, rule, subject, message, fingerprint)],
                                                    resolve=False)

"""Alerts to a Slack-compatible webhook (a real HTTP receiver on 127.0.0.1) and to the log:
deduplicated, re-sent after a while, rate-limited, resolved, and never raising."""

from __future__ import annotations

import logging

import pytest

from tests.fakes.webhook import WebhookReceiver
from strata_monitor import notify
from strata_monitor.notify import Notice, Notifier


class Clock:
    def __init__(self, t: float = 1_000_000.0):
        self.t = t

    def __call__(self) -> float:
        return self.t


def notice(i: int = 0, severity: str = "warning") -> Notice:
    return Notice(severity, "anomaly", f"orders 2026-03-0{i}", f"Tuesday's orders are 50 % below ({i})",
                  f"anomaly|orders|2026-03-0{i}")


@pytest.fixture
def hook():
    with WebhookReceiver() as receiver:
        yield receiver


def test_slack_payload_and_log(hook, tmp_path, caplog):
    n = Notifier(hook.url, tmp_path / "state.sqlite3")
    with caplog.at_level(logging.INFO, logger="strata.alerts"):
        outcome = n.notify([notice(1, "critical")])
    assert outcome.sent == ["anomaly|orders|2026-03-01"]
    (body,) = hook.bodies
    assert body["text"].startswith(":rotating_light: [CRITICAL] anomaly: orders 2026-03-01\n")
    assert body["blocks"][0]["type"] == "section" and "50 % below" in body["blocks"][0]["text"]["text"]
    assert "[CRITICAL] anomaly: orders 2026-03-01: Tuesday's orders are 50 % below (1)" in caplog.text
    assert oct((tmp_path / "state.sqlite3").stat().st_mode & 0o777) == "0o600"


def test_deduplicated_while_open_resent_after_renotify_or_severity_change(hook, tmp_path):
    clock = Clock()
    n = Notifier(hook.url, tmp_path / "s.sqlite3", renotify_after_s=3600, clock=clock)
    n.notify([notice(1)])
    clock.t += 60
    outcome = n.notify([notice(1)])
    assert outcome.duplicates == ["anomaly|orders|2026-03-01"] and len(hook.bodies) == 1
    clock.t += 3600
    n.notify([notice(1)])
    assert len(hook.bodies) == 2  # still open an hour later: said again
    n.notify([notice(1, "critical")])
    assert len(hook.bodies) == 3 and "[CRITICAL]" in hook.bodies[-1]["text"]


def test_resolved_once_when_no_longer_open(hook, tmp_path):
    n = Notifier(hook.url, tmp_path / "s.sqlite3")
    n.notify([notice(1), notice(2)])
    outcome = n.notify([notice(2)])
    assert outcome.resolved == ["anomaly|orders|2026-03-01"]
    assert hook.texts()[-1].startswith(":white_check_mark: [RESOLVED] anomaly: orders 2026-03-01")
    n.notify([notice(2)])
    assert len(hook.bodies) == 3  # resolved once, not again


def test_rate_limited_with_a_summary_and_the_rest_sent_later(hook, tmp_path):
    clock = Clock()
    n = Notifier(hook.url, tmp_path / "s.sqlite3", max_per_minute=3, clock=clock)
    many = [notice(i) for i in range(1, 8)]
    outcome = n.notify(many)
    assert len(outcome.sent) == 2 and len(outcome.rate_limited) == 5
    assert len(hook.bodies) == 3  # two alerts and one summary
    assert "5 more alerts" in hook.texts()[-1] and "rate limit of 3 a minute" in hook.texts()[-1]
    outcome = n.notify(many)  # same minute: no budget left, nothing posted
    assert outcome.sent == [] and len(hook.bodies) == 3
    for _ in range(3):
        clock.t += 61
        n.notify(many)
    assert sorted({t.split("\n")[0] for t in hook.texts() if "[WARNING] anomaly" in t}) == sorted(
        {f":warning: [WARNING] anomaly: orders 2026-03-0{i}" for i in range(1, 8)})


def test_a_failing_webhook_keeps_alerts_pending_and_never_raises(hook, tmp_path):
    n = Notifier(hook.url, tmp_path / "s.sqlite3")
    hook.status = 500
    outcome = n.notify([notice(1)])
    assert outcome.failed == ["anomaly|orders|2026-03-01"] and outcome.sent == []
    hook.status = 200
    assert n.notify([notice(1)]).sent == ["anomaly|orders|2026-03-01"]
    unreachable = Notifier("http://127.0.0.1:9/hook", tmp_path / "t.sqlite3", timeout_s=1)
    assert unreachable.notify([notice(1)]).failed


def test_without_a_webhook_alerts_go_to_the_log_only(tmp_path, monkeypatch, caplog):
    monkeypatch.delenv(notify.WEBHOOK_ENV, raising=False)
    with caplog.at_level(logging.WARNING, logger="strata.alerts"):
        outcome = Notifier(None, tmp_path / "s.sqlite3").notify([notice(1)])
    assert outcome.sent == ["anomaly|orders|2026-03-01"] and "[WARNING] anomaly" in caplog.text
    with pytest.raises(ValueError, match="must start with https://"):
        Notifier("ftp://example.org/hook", tmp_path / "s.sqlite3")


def test_send_alert_for_other_callers_is_deduplicated_but_never_resolved(hook, tmp_path):
    state = str(tmp_path / "s.sqlite3")
    for _ in range(2):
        notify.send_alert("critical", "pipeline_failure", "strata_daily.transform", "task failed: exit 1",
                          webhook_url=hook.url, state_path=state)
    assert len(hook.bodies) == 1 and "[CRITICAL] pipeline_failure: strata_daily.transform" in hook.texts()[0]
    # A later evaluation by `strata check` does not "resolve" what another caller sent.
    Notifier(hook.url, state).notify([])
    assert len(hook.bodies) == 1
    with pytest.raises(ValueError, match="severity 'fatal'"):
        notify.send_alert("fatal", "x", "y", "z", webhook_url=hook.url, state_path=state)

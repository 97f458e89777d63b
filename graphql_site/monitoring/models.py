"""Alert rule overrides (edited in the admin) and the API's per-query cost history.

The rules themselves, with their defaults, live in ``strata_monitor.rules``: a row here only
says what differs (switched off, another severity, other parameters). ``strata check`` and the
dashboards read these rows; ``strata_monitor.rules.validate_override`` checks every save, so a
stored override is always usable.
"""

from __future__ import annotations

import json

from django.core.exceptions import ValidationError
from django.db import models

from strata_monitor import rules


class AlertRule(models.Model):
    # No `choices`: the rule list lives in strata_monitor.rules; a new rule needs no migration.
    name = models.CharField(max_length=64, unique=True, help_text="One of the rules in strata_monitor/rules.py.")
    enabled = models.BooleanField(default=True)
    severity = models.CharField(max_length=10, blank=True, choices=[(s, s) for s in rules.SEVERITIES],
                                help_text="Empty: the rule's default severity.")
    params = models.JSONField(default=dict, blank=True,
                              help_text='Only the parameters to change, e.g. {"threshold": 0.1}; empty: defaults.')
    note = models.TextField(blank=True, help_text="Why it differs from the default (who asked, until when).")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        verbose_name = "alert rule"

    def __str__(self) -> str:
        return self.name

    @property
    def rule(self) -> rules.Rule:
        return rules.RULES_BY_NAME[self.name]

    def defaults_text(self) -> str:
        rule = rules.RULES_BY_NAME.get(self.name)
        return "" if rule is None else json.dumps(rule.defaults, sort_keys=True)

    def clean(self) -> None:
        super().clean()
        try:
            self.params = rules.validate_override(self.name, self.severity or None, self.params)
        except ValueError as exc:
            text = str(exc)
            field = ("name" if text.startswith("unknown rule") else
                     "severity" if text.startswith("severity") else "params")
            raise ValidationError({field: str(exc)}) from None

    def save(self, *args, **kwargs):
        self.full_clean()
        super().save(*args, **kwargs)

    def as_override(self) -> dict:
        return {"name": self.name, "enabled": self.enabled, "severity": self.severity or None,
                "params": self.params or {}}


class QueryCostBucket(models.Model):
    """What one API query name scanned in one minute (``graphql_site.monitoring.costs``)."""

    query_name = models.CharField(max_length=200)
    bucket_start = models.DateTimeField(help_text="Start of the minute (UTC).")
    warehouse = models.CharField(max_length=16)
    executions = models.IntegerField(default=0, help_text="Responses that ran warehouse queries.")
    queries = models.IntegerField(default=0, help_text="Warehouse statements they ran.")
    bytes_total = models.BigIntegerField(default=0)
    bytes_max = models.BigIntegerField(default=0, help_text="Largest bytes of one execution.")
    slot_ms_total = models.BigIntegerField(default=0)
    duration_ms_total = models.FloatField(default=0.0)
    estimated = models.BooleanField(default=False, help_text="DuckDB: an estimate of BigQuery's bytes.")

    class Meta:
        ordering = ["bucket_start", "query_name"]
        constraints = [models.UniqueConstraint(fields=["query_name", "bucket_start", "warehouse"],
                                               name="query_cost_bucket_unique")]
        indexes = [models.Index(fields=["bucket_start"])]

    def __str__(self) -> str:
        return f"{self.query_name} @ {self.bucket_start:%Y-%m-%d %H:%M}"

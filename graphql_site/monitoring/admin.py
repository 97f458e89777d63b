"""Alert rules in the admin: every default rule is listed; editing one stores an override."""

from django import forms
from django.contrib import admin
from django.utils.html import format_html, format_html_join

from strata_monitor import rules

from .models import AlertRule, QueryCostBucket


class AlertRuleForm(forms.ModelForm):
    name = forms.ChoiceField(choices=[(r.name, f"{r.name} ({r.severity})") for r in rules.DEFAULT_RULES])

    class Meta:
        model = AlertRule
        fields = ("name", "enabled", "severity", "params", "note")


@admin.register(AlertRule)
class AlertRuleAdmin(admin.ModelAdmin):
    """Changes are recorded in Django's admin log (LogEntry), visible under each rule's history."""

    form = AlertRuleForm
    list_display = ("name", "enabled", "effective_severity", "overridden_params", "updated_at")
    list_editable = ("enabled",)
    readonly_fields = ("description", "default_severity", "default_params", "updated_at")
    fields = ("name", "description", "enabled", "severity", "default_severity", "params", "default_params", "note",
              "updated_at")

    @admin.display(description="what it watches")
    def description(self, obj):
        return rules.RULES_BY_NAME[obj.name].description if obj and obj.name in rules.RULES_BY_NAME else "-"

    @admin.display(description="default severity")
    def default_severity(self, obj):
        return rules.RULES_BY_NAME[obj.name].severity if obj and obj.name in rules.RULES_BY_NAME else "-"

    @admin.display(description="default parameters")
    def default_params(self, obj):
        if not obj or obj.name not in rules.RULES_BY_NAME:
            return "-"
        rule = rules.RULES_BY_NAME[obj.name]
        if not rule.params:
            return "none"
        rows = format_html_join("", "<tr><td><code>{}</code></td><td><code>{}</code></td><td>{}</td></tr>",
                                ((p.name, repr(p.default), p.help) for p in rule.params))
        return format_html("<table>{}</table>", rows)

    @admin.display(description="severity")
    def effective_severity(self, obj):
        return obj.severity or f"{rules.RULES_BY_NAME[obj.name].severity} (default)"

    @admin.display(description="parameters changed")
    def overridden_params(self, obj):
        return ", ".join(f"{k}={v!r}" for k, v in (obj.params or {}).items()) or "-"


@admin.register(QueryCostBucket)
class QueryCostBucketAdmin(admin.ModelAdmin):
    """Read-only: written by the API itself (graphql_site/monitoring/costs.py)."""

    list_display = ("query_name", "bucket_start", "warehouse", "executions", "bytes_total", "bytes_max", "estimated")
    list_filter = ("warehouse", "estimated")
    search_fields = ("query_name",)
    date_hierarchy = "bucket_start"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

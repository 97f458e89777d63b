from django.contrib import admin
from django.utils.html import format_html

from .models import MetricDefinition


@admin.register(MetricDefinition)
class MetricDefinitionAdmin(admin.ModelAdmin):
    """Changes are recorded in Django's admin log (LogEntry), visible under each object's history."""

    list_display = ("name", "aggregation", "expression", "event_types", "unit", "owner", "updated_at")
    search_fields = ("name", "description", "owner")
    list_filter = ("aggregation", "expression")
    readonly_fields = ("compiled_sql_duckdb", "compiled_sql_bigquery", "created_at", "updated_at")
    fieldsets = (
        (None, {"fields": ("name", "description", "unit", "owner")}),
        ("Definition", {"fields": ("aggregation", "expression", "property_key", "event_types",
                                   "property_filters")}),
        ("Compiled (read-only)", {"fields": ("compiled_sql_duckdb", "compiled_sql_bigquery",
                                             "created_at", "updated_at")}),
    )

    @admin.display(description="SQL (DuckDB)")
    def compiled_sql_duckdb(self, obj):
        return self._sql(obj, "duckdb")

    @admin.display(description="SQL (BigQuery)")
    def compiled_sql_bigquery(self, obj):
        return self._sql(obj, "bigquery")

    @staticmethod
    def _sql(obj, dialect):
        if obj is None or not obj.pk:
            return "-"
        try:
            return format_html("<pre>{}</pre>", obj.compiled_sql(dialect))
        except Exception as exc:  # noqa: BLE001 - show the problem instead of a 500
            return f"cannot compile: {exc}"

"""Metric definitions maintained in the Django admin and served by ``metric`` / ``userBehavior``.

A definition is only data: an aggregation over an expression from the query layer's vetted
list, with filters. It is validated on every save, including by compiling it for DuckDB and
BigQuery, so a definition that is stored can always be queried.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import models

from graphql_site.querylayer import metrics as ql
from strata_core import contract

# RegexValidator searches: anchor with \A and \Z (a `$` would accept a trailing newline).
NAME_VALIDATOR = RegexValidator(rf"\A{contract.SNAKE_CASE_NAME_RE.pattern}\Z", ql.NAME_RULE)


class MetricDefinition(models.Model):
    name = models.CharField(max_length=64, unique=True, validators=[NAME_VALIDATOR])
    description = models.TextField(blank=True)
    aggregation = models.CharField(max_length=20, choices=[(a, a.replace("_", " ")) for a in ql.AGGREGATIONS])
    expression = models.CharField(max_length=40, choices=[(k, f"{k}: {v}") for k, v in ql.EXPRESSIONS.items()],
                                  help_text="A column of the events, or a daily rollup of the dbt models.")
    property_key = models.CharField(max_length=64, blank=True,
                                    help_text="For expression property_number: the properties key.")
    event_types = models.CharField(max_length=500, blank=True,
                                   help_text="Comma-separated event types of the contract to count; empty = all.")
    property_filters = models.JSONField(default=dict, blank=True,
                                        help_text='Equality filters on properties, e.g. {"category": "books"}.')
    unit = models.CharField(max_length=40, blank=True, help_text="e.g. users, events, EUR.")
    owner = models.CharField(max_length=200, help_text="Team or person answerable for the definition.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def event_type_list(self) -> tuple[str, ...]:
        return tuple(t.strip() for t in (self.event_types or "").split(",") if t.strip())

    def to_spec(self) -> ql.MetricSpec:
        filters = self.property_filters or {}
        if not isinstance(filters, dict):
            raise ql.MetricError("property_filters", 'must be a JSON object such as {"category": "books"}')
        items = []
        for key, value in sorted(filters.items()):
            if isinstance(value, bool):
                value = "true" if value else "false"
            elif isinstance(value, (int, float)):
                value = str(value)
            items.append((key, value))
        return ql.MetricSpec(name=self.name, aggregation=self.aggregation, expression=self.expression,
                             event_types=self.event_type_list(), property_filters=tuple(items),
                             property_key=self.property_key or "")

    def compiled_sql(self, dialect_name: str = "duckdb") -> str:
        return ql.compiled_sql(self.to_spec(), _dialect(dialect_name))

    def clean(self) -> None:
        super().clean()
        try:
            spec = self.to_spec()
            spec.validate()
            for dialect in ("duckdb", "bigquery"):
                ql.compiled_sql(spec, _dialect(dialect))
        except ql.MetricError as exc:
            field = exc.field if exc.field in {f.name for f in self._meta.fields} else None
            raise ValidationError({field: exc.message} if field else exc.message) from None

    def save(self, *args, **kwargs):
        self.full_clean()
        super().save(*args, **kwargs)


def _dialect(name: str):
    if name == "bigquery":
        from sqlalchemy_bigquery import BigQueryDialect

        return BigQueryDialect()
    from duckdb_engine import Dialect

    return Dialect()

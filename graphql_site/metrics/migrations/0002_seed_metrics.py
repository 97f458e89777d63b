"""Starter metric definitions, so `metric` and `userBehavior` work on a fresh install."""

from django.db import migrations

SEED = [
    ("events", "Accepted events (each event_id once).", "count", "event_id", "", "", "events"),
    ("active_users", "Distinct identified users with at least one event.", "count_distinct", "user_id",
     "", "", "users"),
    ("net_revenue", "Purchases minus refunds.", "sum", "signed_amount", "purchase,refund", "", "currency"),
    ("purchases", "Number of purchases (orders).", "count", "event_id", "purchase", "", "orders"),
    ("average_purchase", "Mean purchase amount.", "avg", "amount", "purchase", "", "currency"),
    ("searches", "Searches run.", "count", "event_id", "search", "", "searches"),
]


def seed(apps, schema_editor):
    MetricDefinition = apps.get_model("strata_metrics", "MetricDefinition")
    for name, description, aggregation, expression, event_types, property_key, unit in SEED:
        MetricDefinition.objects.get_or_create(name=name, defaults=dict(
            description=description, aggregation=aggregation, expression=expression,
            event_types=event_types, property_key=property_key, property_filters={}, unit=unit,
            owner="strata"))


def unseed(apps, schema_editor):
    apps.get_model("strata_metrics", "MetricDefinition").objects.filter(
        name__in=[s[0] for s in SEED], owner="strata").delete()


class Migration(migrations.Migration):
    dependencies = [("strata_metrics", "0001_initial")]
    operations = [migrations.RunPython(seed, unseed)]

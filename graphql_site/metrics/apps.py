from django.apps import AppConfig


class MetricsConfig(AppConfig):
    name = "graphql_site.metrics"
    label = "strata_metrics"
    verbose_name = "Metric definitions"
    default_auto_field = "django.db.models.BigAutoField"

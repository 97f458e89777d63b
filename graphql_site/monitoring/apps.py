from django.apps import AppConfig


class MonitoringConfig(AppConfig):
    name = "graphql_site.monitoring"
    label = "strata_monitoring"
    verbose_name = "Monitoring: alert rules and API query costs"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import costs

        costs.install()

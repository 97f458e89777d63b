from django.apps import AppConfig


class DashboardsConfig(AppConfig):
    name = "graphql_site.dashboards"
    label = "strata_dashboards"
    verbose_name = "Dashboards"

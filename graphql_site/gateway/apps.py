from django.apps import AppConfig


class GatewayConfig(AppConfig):
    name = "graphql_site.gateway"
    label = "strata_gateway"
    verbose_name = "GraphQL gateway"

    def ready(self):
        from .planning import check_budget

        check_budget()  # the argument limits and the cost budget must agree

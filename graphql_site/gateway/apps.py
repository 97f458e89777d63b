from django.apps import AppConfig


class GatewayConfig(AppConfig):
    name = "graphql_site.gateway"
    label = "strata_gateway"
    verbose_name = "GraphQL gateway"

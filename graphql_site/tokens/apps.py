from django.apps import AppConfig


class TokensConfig(AppConfig):
    name = "graphql_site.tokens"
    label = "strata_tokens"
    verbose_name = "API tokens"
    default_auto_field = "django.db.models.BigAutoField"

from django.apps import AppConfig


class QueryLayerConfig(AppConfig):
    """The query layer as an app only so that its management command (publish_data_version)
    sits next to the code that reads the data version. It has no models."""

    name = "graphql_site.querylayer"
    label = "strata_querylayer"
    verbose_name = "Query layer"

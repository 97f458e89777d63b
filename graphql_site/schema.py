"""The root schema: each app contributes a ``Query`` mixin. ``schema.graphql`` is generated from
this (``python graphql_site/manage.py graphql_schema``) and a test fails when it drifts."""

import graphene

from graphql_site.analytics.schema import Query as AnalyticsQuery
from graphql_site.metrics.schema import Query as MetricsQuery


class Query(MetricsQuery, AnalyticsQuery, graphene.ObjectType):
    """Strata analytics: metrics over the warehouse marts."""


schema = graphene.Schema(query=Query, auto_camelcase=True)

"""The root schema: each app contributes a ``Query`` mixin and the planners of its root fields
(``gateway.planning``). ``schema.graphql`` is generated from this
(``python graphql_site/manage.py graphql_schema``) and a test fails when it drifts."""

import graphene

from graphql_site.analytics.schema import PLANNERS as ANALYTICS_PLANNERS
from graphql_site.analytics.schema import Query as AnalyticsQuery
from graphql_site.metrics.schema import PLANNERS as METRICS_PLANNERS
from graphql_site.metrics.schema import Query as MetricsQuery


class Query(MetricsQuery, AnalyticsQuery, graphene.ObjectType):
    """Strata analytics: metrics over the warehouse marts.

    Every request is priced before it runs: each root field costs 10, plus one per day of its
    date range (times the funnel's steps) and one per row of `limit` or `first`. A request may
    cost at most 5000 (STRATA_GRAPHQL_MAX_COST), and any single field whose arguments are within
    their own limits always fits. A bad argument refuses the whole request (HTTP 400, code
    BAD_USER_INPUT, naming the argument).
    """


schema = graphene.Schema(query=Query, auto_camelcase=True)
PLANNERS = {**ANALYTICS_PLANNERS, **METRICS_PLANNERS}

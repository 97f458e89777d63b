"""``graphql_site``: the Django project that serves the warehouse marts over GraphQL.

Layout (one job per package):

* ``settings/``   base / local / test / production, all configured from the environment;
* ``querylayer/`` the only code that writes SQL: SQLAlchemy Core over DuckDB or BigQuery;
* ``analytics/``  the GraphQL fields over the marts (one ``Query`` mixin);
* ``metrics/``    ``MetricDefinition`` (admin-managed metrics) and the ``metric`` / ``userBehavior`` fields;
* ``tokens/``     API tokens (hashed) and bearer authentication;
* ``gateway/``    ``/graphql`` in front of Django (``front``, ``pipeline``): rate limits, request
                  bounds, persisted queries, documents and their bounds, planning (argument
                  checks and cost), the two-level cache; ``/``, GraphiQL's page and ``/healthz``.
"""

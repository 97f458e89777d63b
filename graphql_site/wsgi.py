"""WSGI entry point for gunicorn: ``gunicorn graphql_site.wsgi:application``.

``/graphql`` is served by ``gateway.front`` in front of Django; everything else by Django.
"""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "graphql_site.settings.local")
django_application = get_wsgi_application()  # sets Django up: the gateway imports models

from graphql_site.gateway.front import GraphQLGateway  # noqa: E402

application = GraphQLGateway(django_application)

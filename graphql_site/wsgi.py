"""WSGI entry point for gunicorn: ``gunicorn graphql_site.wsgi:application``.

``/graphql`` is served by ``gateway.front`` in front of Django; everything else by Django.
"""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "graphql_site.settings.local")

from graphql_site.gateway.front import GraphQLGateway  # noqa: E402 (needs the settings module)

application = GraphQLGateway(get_wsgi_application())

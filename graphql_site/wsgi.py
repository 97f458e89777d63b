"""WSGI entry point for gunicorn: ``gunicorn graphql_site.wsgi:application``."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "graphql_site.settings.local")
application = get_wsgi_application()

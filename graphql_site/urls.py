from django.apps import apps
from django.conf import settings
from django.contrib import admin
from django.contrib.staticfiles.views import serve as serve_static
from django.urls import include, path, re_path

from graphql_site.gateway.views import graphiql, healthz, index

# /graphql is answered by gateway.front in front of Django; only GraphiQL's page reaches this route.
urlpatterns = [
    path("", index, name="index"),
    path("graphql", graphiql, name="graphql"),
    path("graphql/", graphiql),
    path("healthz", healthz, name="healthz"),
    path("admin/", admin.site.urls),
    path("dashboards/", include("graphql_site.dashboards.urls")),
]

if apps.is_installed("graphql_site.dashboards"):
    urlpatterns.append(path("dashboards/", include("graphql_site.dashboards.urls")))

if settings.STRATA_SERVE_STATIC:
    # Local only (strata serve / make demo): admin, GraphiQL and dashboard assets from the apps.
    urlpatterns.append(re_path(r"^static/(?P<path>.*)$", serve_static, {"insecure": True}))

from django.conf import settings
from django.contrib import admin
from django.contrib.staticfiles.views import serve as serve_static
from django.urls import include, path, re_path

from graphql_site.gateway.views import graphql_endpoint, healthz

urlpatterns = [
    path("graphql", graphql_endpoint, name="graphql"),
    path("graphql/", graphql_endpoint),
    path("healthz", healthz, name="healthz"),
    path("admin/", admin.site.urls),
    path("dashboards/", include("graphql_site.dashboards.urls")),
]

if settings.STRATA_SERVE_STATIC:
    # Local only (strata serve / make demo): admin and GraphiQL assets straight from the apps.
    urlpatterns.append(re_path(r"^static/(?P<path>.*)$", serve_static, {"insecure": True}))

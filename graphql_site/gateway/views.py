"""Django views of the gateway app: ``/`` (an index of what this server offers), GraphiQL's page
on ``GET /graphql`` from a browser (local settings only), and ``/healthz``.

``/graphql`` itself is answered by ``gateway.front`` in front of Django.
"""

from __future__ import annotations

import orjson
from django.apps import apps
from django.conf import settings
from django.db import connection
from django.http import HttpResponse, HttpResponseNotAllowed
from django.shortcuts import render
from django.urls import NoReverseMatch, reverse

from graphql_site.querylayer.engine import WarehouseUnavailable, get_warehouse

from . import caching

JSON = "application/json"


def index(request) -> HttpResponse:
    """A page of links: GraphiQL, the dashboards (when installed), the admin, the health check."""
    links = []
    if settings.STRATA_GRAPHIQL:
        links.append(("GraphiQL", reverse("graphql"), "explore the API in the browser (paste an API token "
                                                      "into its Headers tab)"))
    else:
        links.append(("GraphQL", reverse("graphql"), "POST {\"query\": ...} with an `Authorization: Bearer` token"))
    if apps.is_installed("graphql_site.dashboards"):
        try:
            links.append(("Dashboards", reverse("dashboards:index"), "the metrics as charts"))
        except NoReverseMatch:
            links.append(("Dashboards", "/dashboards/", "the metrics as charts"))
    links.append(("Admin", reverse("admin:index"), "metric definitions and API tokens (login required)"))
    links.append(("Health", reverse("healthz"), "database, cache and warehouse state"))
    return render(request, "gateway/index.html", {"links": links})


def graphiql(request) -> HttpResponse:
    """GraphiQL, React and their CSS come from this server's static files (``vendor_assets``)."""
    if request.method != "GET" or not settings.STRATA_GRAPHIQL:
        return HttpResponseNotAllowed(["POST"])
    return render(request, "gateway/graphiql.html", {})


def healthz(request) -> HttpResponse:
    """Liveness plus what an operator wants first. 200 when the API can answer (``degraded`` if
    only the shared cache is down, since it then answers without it); 503, naming what is down,
    when the database or the warehouse is. Never a file path or an exception text."""
    checks, down = {}, []
    try:
        with connection.cursor() as cursor:
            cursor.execute("select 1")
        checks["database"] = "ok"
    except Exception as exc:  # noqa: BLE001
        checks["database"] = f"unavailable ({type(exc).__name__})"
        down.append("database")
    cache = caching.get_cache()
    if cache.shared is None:
        checks["cache"] = "ok (in-process)"
    else:
        checks["cache"] = "ok" if cache.shared.ping() else "unavailable (answering without the shared cache)"
    version = None
    try:
        version = get_warehouse().snapshot().version
        checks["warehouse"] = "ok"
    except WarehouseUnavailable as exc:
        checks["warehouse"] = f"unavailable: {exc}"
        down.append("warehouse")
    if down:
        status, state = 503, "unavailable"
    else:
        status, state = 200, "ok" if checks["cache"].startswith("ok") else "degraded"
    body = {"status": state, **({"down": down} if down else {}), **checks, "dataVersion": version}
    return HttpResponse(orjson.dumps(body), status=status, content_type=JSON)

"""The HTTP endpoint: ``POST /graphql`` (JSON ``{query, variables, operationName}``), GraphiQL on
``GET /graphql`` from a browser (local only), and ``GET /healthz``.

Order of work for a POST: bearer token -> rate limit -> whole-response cache (key: data version,
query text, variables) -> parse and validate (memoised per query text) -> execute, with each
root field cached on its own (``context.resolve_cached``). Every response carries
``extensions``: ``cacheHit``, ``cache`` (hit | partial | miss | unavailable), ``dataVersion``,
``warehouse`` and, on BigQuery, ``bytesProcessed``.
"""

from __future__ import annotations

import functools
import logging

import orjson
from django.conf import settings
from django.db import connection
from django.http import HttpResponse
from django.shortcuts import render
from django.views.decorators.csrf import csrf_exempt
from graphene_django.settings import graphene_settings
from graphene_django.views import GraphQLView
from graphql import GraphQLError, execute, parse, specified_rules, validate
from graphql.validation import NoSchemaIntrospectionCustomRule

from graphql_site.querylayer.engine import WarehouseUnavailable, get_warehouse
from graphql_site.tokens import ratelimit
from graphql_site.tokens.auth import AuthError, authenticate

from . import caching
from .context import RequestContext
from .limits import QueryDepthRule, complexity_error

log = logging.getLogger("graphql_site.gateway")
JSON = "application/json"


def _schema():
    from graphql_site.schema import schema

    return schema.graphql_schema


def _error_response(status: int, message: str, code: str, headers: dict | None = None) -> HttpResponse:
    body = orjson.dumps({"errors": [{"message": message, "extensions": {"code": code}}]})
    response = HttpResponse(body, status=status, content_type=JSON)
    for key, value in (headers or {}).items():
        response[key] = value
    return response


@functools.lru_cache(maxsize=512)
def _document(query: str, introspection: bool, max_depth: int):
    """Parse and validate once per distinct query text and limit settings."""
    try:
        document = parse(query)
    except GraphQLError as exc:
        return None, [exc]
    rules = [*specified_rules, QueryDepthRule]
    if not introspection:
        rules.append(NoSchemaIntrospectionCustomRule)
    errors = validate(_schema(), document, rules)
    return (None, errors) if errors else (document, [])


def _format_errors(errors) -> list[dict]:
    out = []
    for error in errors:
        formatted = error.formatted
        if error.original_error is not None and not isinstance(error.original_error, GraphQLError):
            log.error("resolver failed", exc_info=error.original_error)
            formatted = {**formatted, "message": "internal error", "extensions": {"code": "INTERNAL"}}
        out.append(formatted)
    return out


def _respond(status: int, data_json: bytes | None, errors: list | None, extensions: dict) -> HttpResponse:
    parts = []
    if errors:
        parts.append(b'"errors":' + orjson.dumps(errors))
    if data_json is not None:
        parts.append(b'"data":' + data_json)
    parts.append(b'"extensions":' + orjson.dumps(extensions))
    return HttpResponse(b"{" + b",".join(parts) + b"}", status=status, content_type=JSON)


def _parse_body(request) -> tuple[str, dict | None, str | None]:
    try:
        body = orjson.loads(request.body or b"null")
    except orjson.JSONDecodeError:
        raise ValueError("the body must be JSON: {\"query\": \"...\", \"variables\": {...}}") from None
    if not isinstance(body, dict):
        raise ValueError("the body must be a JSON object with a `query` string")
    query, variables, operation = body.get("query"), body.get("variables"), body.get("operationName")
    if not isinstance(query, str) or not query.strip():
        raise ValueError("`query` must be a non-empty string")
    if variables is not None and not isinstance(variables, dict):
        raise ValueError("`variables` must be a JSON object")
    if operation is not None and not isinstance(operation, str):
        raise ValueError("`operationName` must be a string")
    return query, variables or None, operation


def _graphiql(request) -> HttpResponse:
    view = GraphQLView
    return render(request, view.graphiql_template, {
        "whatwg_fetch_version": view.whatwg_fetch_version, "whatwg_fetch_sri": view.whatwg_fetch_sri,
        "react_version": view.react_version, "react_sri": view.react_sri, "react_dom_sri": view.react_dom_sri,
        "graphiql_version": view.graphiql_version, "graphiql_sri": view.graphiql_sri,
        "graphiql_css_sri": view.graphiql_css_sri,
        "subscriptions_transport_ws_version": view.subscriptions_transport_ws_version,
        "subscriptions_transport_ws_sri": view.subscriptions_transport_ws_sri,
        "graphiql_plugin_explorer_version": view.graphiql_plugin_explorer_version,
        "graphiql_plugin_explorer_sri": view.graphiql_plugin_explorer_sri,
        "graphiql_plugin_explorer_css_sri": view.graphiql_plugin_explorer_css_sri,
        "subscription_path": None,
        "graphiql_header_editor_enabled": True,
        "graphiql_should_persist_headers": graphene_settings.GRAPHIQL_SHOULD_PERSIST_HEADERS,
        "graphiql_input_value_deprecation": graphene_settings.GRAPHIQL_INPUT_VALUE_DEPRECATION,
    })


def _rate_limited(principal, retry_after: int) -> HttpResponse:
    return _error_response(
        429, f"rate limit of {principal.rate_limit_per_minute} requests per minute exceeded for token "
             f"{principal.name!r}; retry in {retry_after} s", "RATE_LIMITED", {"Retry-After": str(retry_after)})


@csrf_exempt
def graphql_endpoint(request) -> HttpResponse:
    if request.method == "GET":
        if settings.STRATA_GRAPHIQL and "text/html" in request.headers.get("Accept", ""):
            return _graphiql(request)
        return _error_response(405, "POST a JSON body {\"query\": ..., \"variables\": ...} to /graphql",
                               "METHOD_NOT_ALLOWED", {"Allow": "POST"})
    if request.method != "POST":
        return _error_response(405, f"{request.method} is not supported; use POST", "METHOD_NOT_ALLOWED",
                               {"Allow": "POST"})

    try:
        principal = authenticate(request.headers.get("Authorization"))
    except AuthError as exc:
        return _error_response(401, exc.message, "UNAUTHENTICATED", {"WWW-Authenticate": 'Bearer realm="strata"'})
    try:
        query, variables, operation = _parse_body(request)
    except ValueError as exc:
        retry_after = ratelimit.check(principal)
        if retry_after:
            return _rate_limited(principal, retry_after)
        return _error_response(400, str(exc), "BAD_REQUEST")

    warehouse = settings.STRATA_WAREHOUSE
    try:
        ctx = RequestContext(request, principal, get_warehouse().snapshot())
        version = ctx.snapshot.version
        caching.note_version(version)
    except WarehouseUnavailable as exc:
        ctx = RequestContext(request, principal, None, exc)  # the resolvers report it
        version = None
    extensions = {"cacheHit": False, "cache": "miss", "dataVersion": version, "warehouse": warehouse}

    # The limits are part of the key: a response validated under other limits is not reused.
    policy = (settings.STRATA_GRAPHQL_INTROSPECTION, settings.STRATA_GRAPHQL_MAX_DEPTH,
              settings.STRATA_GRAPHQL_MAX_COMPLEXITY)
    key = caching.response_key(version, query, variables, operation, policy) if version else None
    # One round trip: count the request against the token's limit and look the response up.
    retry_after, cached = ratelimit.check_and_get(principal, key)
    if retry_after:
        return _rate_limited(principal, retry_after)
    if cached is not caching.MISSING:
        extensions.update(cacheHit=True, cache="hit")
        return _respond(200, cached, None, extensions)

    document, errors = _document(query, settings.STRATA_GRAPHQL_INTROSPECTION, settings.STRATA_GRAPHQL_MAX_DEPTH)
    if errors:
        return _respond(400, None, [e.formatted for e in errors], extensions)
    too_complex = complexity_error(document, operation, variables)
    if too_complex is not None:
        return _respond(400, None, [too_complex.formatted], extensions)

    result = execute(_schema(), document, variable_values=variables, operation_name=operation,
                     context_value=ctx)
    if ctx.hits and not ctx.misses:
        extensions.update(cacheHit=True, cache="hit")
    elif ctx.hits:
        extensions["cache"] = "partial"
    if not caching.cache.available:
        extensions["cache"] = "unavailable"
    if warehouse == "bigquery":
        extensions["bytesProcessed"] = ctx.stats.bytes_processed
    if result.errors and any(not e.path for e in result.errors):
        # Variable coercion or operation selection failed: nothing ran.
        return _respond(400, None, _format_errors(result.errors), extensions)
    data_json = orjson.dumps(result.data)
    if result.errors:
        return _respond(200, data_json, _format_errors(result.errors), extensions)
    if key is not None and ctx.response_cacheable and caching.cache.available:
        caching.cache.set(key, data_json, ctx.ttl_s or settings.STRATA_CACHE_HOT_TTL_S)
    return _respond(200, data_json, None, extensions)


def healthz(request) -> HttpResponse:
    """Liveness plus what an operator wants first: database, cache and warehouse state."""
    status, body = 200, {"status": "ok"}
    try:
        with connection.cursor() as cursor:
            cursor.execute("select 1")
        body["database"] = "ok"
    except Exception as exc:  # noqa: BLE001
        status, body["status"], body["database"] = 503, "error", f"error: {type(exc).__name__}"
    caching.cache.get("healthz")
    body["cache"] = "ok" if caching.cache.available else "unavailable"
    try:
        snap = get_warehouse().snapshot()
        body.update(warehouse="ok", dataVersion=snap.version)
    except WarehouseUnavailable as exc:
        body.update(warehouse=f"unavailable: {exc}", dataVersion=None)
    return HttpResponse(orjson.dumps(body), status=status, content_type=JSON)

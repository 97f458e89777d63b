"""The GraphQL request path, in one direction:

    authenticate -> limit -> read -> look up -> execute -> store

1. **authenticate**: an address over its failed-authentication limit is refused (429) before
   its token is looked up; a bad token is a 401 and counts against the address.
2. **limit**: the token's requests per minute (429 with ``Retry-After``), before any other work.
3. **read**: the body (bounded by ``STRATA_MAX_BODY_BYTES``, nesting of ``variables`` and
   ``extensions`` bounded by ``STRATA_MAX_JSON_DEPTH``) or the GET parameters, then the
   persisted query (``persisted``).
4. **look up**: the response cache, keyed by (data version, query hash, variables, operation,
   token scope, limits). ``If-None-Match`` with the current ``ETag`` gives 304.
5. **execute**: parse and validate (``documents``), plan (``planning``: arguments, cost),
   execute; each root field is cached on its own too (``context.resolve_cached``).
6. **store**: successful, cacheable responses.

GET requests (APQ hashes or query text) get ``ETag`` (per data version and request),
``Cache-Control: public, max-age=STRATA_HTTP_MAX_AGE_S`` and ``Vary: Authorization``: a CDN or a
browser may serve repeats to the same token, and revalidates with ``If-None-Match`` (304).

Status codes: 200 when the request executed (field errors, such as the warehouse being down,
come with ``data``); 400 when it was refused before executing (malformed, invalid, too
expensive, or a bad argument: ``extensions.code`` ``BAD_USER_INPUT`` with ``argument``); 401,
413, 405 and 429 for what they mean in HTTP. Every error carries ``extensions.code``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from urllib.parse import parse_qsl

import orjson
from django.core.signals import setting_changed
from django.db import close_old_connections
from django.http.request import split_domain_port, validate_host
from graphql import GraphQLError, execute

from graphql_site.monitoring import costs
from graphql_site.querylayer.engine import WarehouseUnavailable, get_warehouse
from graphql_site.tokens.auth import AuthError, authenticate

from . import caching, documents, persisted, planning, ratelimit
from .conf import conf
from .context import RequestContext

log = logging.getLogger("graphql_site.gateway")
JSON = "application/json"


@dataclasses.dataclass
class Request:
    method: str
    query_string: str
    headers: dict  # WSGI names: HTTP_AUTHORIZATION, CONTENT_LENGTH, ...
    read_body: object  # callable(limit) -> bytes
    remote_addr: str


@dataclasses.dataclass
class Response:
    status: int
    body: bytes
    headers: list

    @classmethod
    def json(cls, status: int, body: bytes, headers: list | None = None) -> "Response":
        return cls(status, body, [("Content-Type", JSON), *(headers or [])])


def error_response(status: int, message: str, code: str, headers: list | None = None, **extensions) -> Response:
    body = orjson.dumps({"errors": [{"message": message, "extensions": {"code": code, **extensions}}]})
    return Response.json(status, body, headers)


class RequestError(Exception):
    def __init__(self, response: Response):
        super().__init__(response.status)
        self.response = response


@dataclasses.dataclass
class GraphQLRequest:
    query: str
    query_hash: str
    variables: dict | None
    operation_name: str | None
    _digests: dict = dataclasses.field(default_factory=dict, repr=False)

    def response_key(self, version: str, scope: str, policy: tuple) -> str:
        digest = self._digests.get((scope, policy))
        if digest is None:
            digest = self._digests[(scope, policy)] = caching.digest(
                self.query_hash, self.variables, self.operation_name, scope, policy)
        return f"r:{version}:{digest}"


def _schema():
    from graphql_site.schema import schema

    return schema.graphql_schema


def _planners():
    from graphql_site.schema import PLANNERS

    return PLANNERS


def client_address(request: Request) -> str:
    """The client's address: ``REMOTE_ADDR``, or the entry ``STRATA_TRUSTED_PROXIES`` hops from the
    right of ``X-Forwarded-For`` behind that many proxies (Cloud Run's front end is one)."""
    hops = conf().STRATA_TRUSTED_PROXIES
    if hops:
        forwarded = [a.strip() for a in request.headers.get("HTTP_X_FORWARDED_FOR", "").split(",") if a.strip()]
        if len(forwarded) >= hops:
            return forwarded[-hops]
    return request.remote_addr or "unknown"


def _depth_over(value, limit: int) -> bool:
    """Whether JSON ``value`` nests deeper than ``limit`` (iterative: never a RecursionError)."""
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def _bad_request(message: str) -> RequestError:
    return RequestError(error_response(400, message, "BAD_REQUEST"))


def _json_param(value, name: str):
    if value is None or isinstance(value, (dict, list)) or value == "":
        return None if value == "" else value
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError:
        raise _bad_request(f"`{name}` must be JSON") from None


class _Recent:
    """Requests read recently, by their exact bytes: a repeated request (the cacheable case) is
    one dictionary lookup instead of parsing a query string or JSON again. Bounded by entries and
    by the size of what is kept; a failed read is never kept."""

    MAX_ENTRIES, MAX_KEY_BYTES = 4096, 8192

    def __init__(self):
        self.entries: dict = {}

    def get(self, key):
        return self.entries.get(key)

    def put(self, key, gql: GraphQLRequest) -> None:
        if len(key[1]) <= self.MAX_KEY_BYTES:
            if len(self.entries) >= self.MAX_ENTRIES:
                self.entries.clear()
            self.entries[key] = gql


_recent = _Recent()


def read_request(request: Request) -> GraphQLRequest:
    """The GraphQL request in a POST body or GET parameters, bounded and type-checked."""
    limit = conf().STRATA_MAX_BODY_BYTES
    if request.method == "GET":
        if len(request.query_string) > limit:
            raise RequestError(error_response(413, f"the query string is over {limit} bytes", "REQUEST_TOO_LARGE"))
        key = ("GET", request.query_string)
    else:
        raw = request.read_body(limit)
        if raw is None:
            raise RequestError(error_response(413, f"the body is over {limit} bytes "
                                              "(STRATA_MAX_BODY_BYTES)", "REQUEST_TOO_LARGE"))
        key = (request.headers.get("CONTENT_TYPE", ""), raw)
    gql = _recent.get(key)
    if gql is None:
        gql = _read(request, key[1])
        _recent.put(key, gql)
    return gql


def _read(request: Request, raw) -> GraphQLRequest:
    if request.method == "GET":
        raw_text = request.query_string.encode()
        params = dict(parse_qsl(request.query_string, keep_blank_values=True))
        body = {"query": params.get("query") or None, "operationName": params.get("operationName") or None,
                "variables": _json_param(params.get("variables"), "variables"),
                "extensions": _json_param(params.get("extensions"), "extensions")}
    else:
        content_type = request.headers.get("CONTENT_TYPE", "").split(";")[0].strip().lower()
        if content_type not in ("application/json", ""):
            raise RequestError(error_response(415, f"Content-Type {content_type!r}: send application/json",
                                              "UNSUPPORTED_MEDIA_TYPE"))
        raw_text = raw
        try:
            body = orjson.loads(raw or b"null")
        except orjson.JSONDecodeError:
            raise _bad_request("the body must be JSON: {\"query\": \"...\", \"variables\": {...}}") from None
        if not isinstance(body, dict):
            raise _bad_request("the body must be a JSON object with a `query` string")
    query, variables = body.get("query"), body.get("variables")
    operation, extensions = body.get("operationName"), body.get("extensions")
    if query is not None and (not isinstance(query, str) or not query.strip()):
        raise _bad_request("`query` must be a non-empty string")
    if variables is not None and not isinstance(variables, dict):
        raise _bad_request("`variables` must be a JSON object")
    if operation is not None and not isinstance(operation, str):
        raise _bad_request("`operationName` must be a string")
    if extensions is not None and not isinstance(extensions, dict):
        raise _bad_request("`extensions` must be a JSON object")
    depth = conf().STRATA_MAX_JSON_DEPTH
    # Nesting needs at least one bracket per level: most requests are cleared by counting them.
    brackets = raw_text.count(b"{") + raw_text.count(b"[")
    if brackets > depth and (_depth_over(variables, depth) or _depth_over(extensions, depth)):
        raise _bad_request(f"`variables` and `extensions` may nest at most {depth} levels")
    try:
        text, query_hash = persisted.resolve(query, extensions)
    except persisted.PersistedQueryError as exc:
        headers = [("Cache-Control", "private, no-cache, must-revalidate")]
        raise RequestError(error_response(exc.status, exc.message, exc.code, headers)) from None
    return GraphQLRequest(text, query_hash, variables or None, operation)


def _policy() -> tuple:
    """Limits that change what a response may be: part of every response key."""
    return (conf().STRATA_GRAPHQL_INTROSPECTION, conf().STRATA_GRAPHQL_MAX_DEPTH,
            conf().STRATA_GRAPHQL_MAX_COST, conf().STRATA_GRAPHQL_MAX_FIELDS,
            conf().STRATA_GRAPHQL_MAX_TOKENS, conf().STRATA_GRAPHQL_SUGGESTIONS)


def _etag(key: str) -> str:
    return 'W/"' + hashlib.blake2b(key.encode(), digest_size=12).hexdigest() + '"'


def _http_cache_headers(etag: str) -> list:
    return [("ETag", etag), ("Cache-Control", f"public, max-age={conf().STRATA_HTTP_MAX_AGE_S}"),
            ("Vary", "Authorization")]


def _body(data_json: bytes | None, errors: list | None, extensions: dict) -> bytes:
    parts = []
    if errors:
        parts.append(b'"errors":' + orjson.dumps(errors))
    if data_json is not None:
        parts.append(b'"data":' + data_json)
    parts.append(b'"extensions":' + orjson.dumps(extensions))
    return b"{" + b",".join(parts) + b"}"


def _rate_limited(principal, retry_after: int) -> Response:
    return error_response(
        429, f"rate limit of {principal.rate_limit_per_minute} requests per minute exceeded for token "
             f"{principal.name!r}; retry in {retry_after} s", "RATE_LIMITED", [("Retry-After", str(retry_after))])


_hosts: dict[str, bool] = {}


def _forget(**_kwargs) -> None:
    """Settings changed (tests): what was read under the old ones no longer holds."""
    _hosts.clear()
    _recent.entries.clear()


setting_changed.connect(_forget)


def _host_allowed(header: str) -> bool:
    """Django's own rule (``HttpRequest.get_host``), which this endpoint bypasses; memoised."""
    allowed = _hosts.get(header)
    if allowed is None:
        c = conf()
        host, _port = split_domain_port(header)
        hosts = c.ALLOWED_HOSTS or ([".localhost", "127.0.0.1", "[::1]"] if c.DEBUG else [])
        allowed = bool(host) and validate_host(host, hosts)
        if len(_hosts) > 1000:
            _hosts.clear()
        _hosts[header] = allowed
    return allowed


def handle(request: Request) -> Response:
    if request.method not in ("GET", "POST"):
        return error_response(405, f"{request.method} is not supported: POST a JSON body {{\"query\": ..., "
                                   "\"variables\": ...}, or GET with query parameters", "METHOD_NOT_ALLOWED",
                              [("Allow", "GET, POST")])
    if not _host_allowed(request.headers.get("HTTP_HOST", "")):
        return error_response(400, "this Host is not served here (DJANGO_ALLOWED_HOSTS)", "DISALLOWED_HOST")

    # 1. authenticate
    address = client_address(request)
    wait = ratelimit.auth_failures.blocked(address)
    if wait:
        return error_response(429, f"too many failed authentications from this address; retry in {wait} s",
                              "AUTH_RATE_LIMITED", [("Retry-After", str(wait))])
    try:
        principal = authenticate(request.headers.get("HTTP_AUTHORIZATION"))
    except AuthError as exc:
        ratelimit.auth_failures.failed(address)
        return error_response(401, exc.message, "UNAUTHENTICATED",
                              [("WWW-Authenticate", 'Bearer realm="strata"')])
    # 2. limit
    wait = ratelimit.check_token(principal)
    if wait:
        return _rate_limited(principal, wait)
    # 3. read
    try:
        gql = read_request(request)
    except RequestError as exc:
        return exc.response
    # 4. look up
    warehouse = conf().STRATA_WAREHOUSE
    try:
        snapshot, unavailable = get_warehouse().snapshot(), None
        version = snapshot.version
        caching.note_version(version)
    except WarehouseUnavailable as exc:
        snapshot, unavailable, version = None, exc, None
    extensions = {"cacheHit": False, "cache": "miss", "dataVersion": version, "warehouse": warehouse}
    cache = caching.get_cache()
    key = gql.response_key(version, principal.scope, _policy()) if version else None
    headers = []
    if key is not None and request.method == "GET":
        etag = _etag(key)
        headers = _http_cache_headers(etag)
    if key is not None:
        data_json = cache.get(key)
        if data_json is not None:
            if headers and etag in request.headers.get("HTTP_IF_NONE_MATCH", ""):
                return Response(304, b"", headers)  # what the client has is what it would get
            extensions.update(cacheHit=True, cache="hit")
            return Response.json(200, _body(data_json, None, extensions), headers)
    # 5. execute
    return _execute(gql, principal, snapshot, unavailable, extensions, key, headers)


def _execute(gql: GraphQLRequest, principal, snapshot, unavailable, extensions, key, headers) -> Response:
    # Resolvers may use Django's database (metric definitions): close stale connections around
    # them, as Django does around a request (this endpoint runs outside Django's handling).
    close_old_connections()
    try:
        with costs.measure(gql.operation_name, gql.query):  # the per-query cost history
            return _run(gql, principal, snapshot, unavailable, extensions, key, headers)
    finally:
        close_old_connections()


def _run(gql: GraphQLRequest, principal, snapshot, unavailable, extensions, key, headers) -> Response:
    schema = _schema()
    prepared = documents.prepare(gql.query, schema)
    if prepared.errors:
        return Response.json(400, _body(None, prepared.errors, extensions))
    ctx = RequestContext(principal, snapshot, unavailable)
    try:
        ctx.plan = planning.plan(schema, prepared.document, gql.operation_name, gql.variables, ctx, _planners())
    except planning.Refused as exc:
        return Response.json(400, _body(None, exc.errors, extensions))
    result = execute(schema, prepared.document, variable_values=gql.variables, operation_name=gql.operation_name,
                     context_value=ctx)
    cache = caching.get_cache()
    if ctx.hits and not ctx.misses:
        extensions.update(cacheHit=True, cache="hit")
    elif ctx.hits:
        extensions["cache"] = "partial"
    if not cache.available:
        extensions["cache"] = "unavailable"
    if conf().STRATA_WAREHOUSE == "bigquery":
        extensions["bytesProcessed"] = ctx.stats.bytes_processed
    if result.errors and any(not e.path for e in result.errors):
        return Response.json(400, _body(None, _format_errors(result.errors), extensions))
    data_json = orjson.dumps(result.data)
    if result.errors:
        return Response.json(200, _body(data_json, _format_errors(result.errors), extensions))
    # 6. store
    if key is not None and ctx.plan.response_cacheable:
        cache.set(key, data_json, ctx.ttl_s or conf().STRATA_CACHE_HOT_TTL_S)
    else:
        headers = []  # not cacheable: no validators either
    return Response.json(200, _body(data_json, None, extensions), headers)


def _format_errors(errors) -> list[dict]:
    out = []
    for error in errors:
        formatted = error.formatted
        original = error.original_error
        if original is not None and not isinstance(original, GraphQLError):
            log.error("resolver failed", exc_info=original)
            formatted = {**formatted, "message": "internal error", "extensions": {"code": "INTERNAL"}}
        elif "code" not in (formatted.get("extensions") or {}):
            formatted = {**formatted, "extensions": {**(formatted.get("extensions") or {}), "code": "INTERNAL"}}
        out.append(formatted)
    return out

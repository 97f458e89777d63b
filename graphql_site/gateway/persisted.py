"""Persisted queries: Apollo's automatic persisted queries (APQ), and an allow-list for production.

APQ (``STRATA_PERSISTED_QUERIES=apq``, the default): a client sends
``extensions: {"persistedQuery": {"version": 1, "sha256Hash": "<hex>"}}`` without the query text.
A known hash runs its query; an unknown one answers ``PersistedQueryNotFound`` (HTTP 200, code
``PERSISTED_QUERY_NOT_FOUND``, as Apollo Server does), and the client retries with the text,
which registers it. Hashes travel well in GET URLs, so repeats are cacheable by HTTP caches.
Query text sent without a hash runs as usual.

Allow-list (``STRATA_PERSISTED_QUERIES=allowlist``): only the operations of
``STRATA_PERSISTED_QUERY_MANIFEST`` run, by hash or by identical text; nothing is registered.
The manifest is Apollo's persisted-query manifest format
(``{"format": "apollo-persisted-query-manifest", "version": 1, "operations": [{"id": sha256,
"body": text, "name": ..., "type": "query"}]}``), so ``generate-persisted-query-manifest`` output
works as it is.

The registered texts live in the cache (Redis, else in-process) under ``q:<sha256>``; a text is
only ever used after its SHA-256 is checked against the hash it is stored under.
"""

from __future__ import annotations

import functools
import hashlib
import json
import pathlib
import re

from django.core.exceptions import ImproperlyConfigured

from . import caching
from .conf import conf

HASH_RE = re.compile(r"[0-9a-f]{64}")
MODES = ("apq", "allowlist", "off")


class PersistedQueryError(Exception):
    def __init__(self, status: int, message: str, code: str):
        super().__init__(message)
        self.status, self.message, self.code = status, message, code


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@functools.lru_cache(maxsize=4)
def load_manifest(path: str) -> dict[str, str]:
    """hash -> query text of an Apollo persisted-query manifest (every hash checked)."""
    try:
        manifest = json.loads(pathlib.Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise ImproperlyConfigured(f"STRATA_PERSISTED_QUERY_MANIFEST={path}: {exc}") from None
    if manifest.get("format") != "apollo-persisted-query-manifest" or manifest.get("version") != 1:
        raise ImproperlyConfigured(f"{path}: expected an apollo-persisted-query-manifest, version 1")
    out = {}
    for op in manifest.get("operations", []):
        body, op_id = op.get("body"), op.get("id")
        if not isinstance(body, str) or sha256_hex(body) != op_id:
            raise ImproperlyConfigured(f"{path}: operation {op.get('name')!r}: id is not the SHA-256 of its body")
        out[op_id] = body
    return out


def _mode() -> str:
    mode = conf().STRATA_PERSISTED_QUERIES
    if mode not in MODES:
        raise ImproperlyConfigured(f"STRATA_PERSISTED_QUERIES={mode!r}: expected one of {', '.join(MODES)}")
    return mode


def resolve(query: str | None, extensions: dict | None) -> tuple[str, str]:
    """(query text, its SHA-256) for a request's ``query`` and ``extensions``."""
    mode = _mode()
    pq = (extensions or {}).get("persistedQuery")
    if pq is not None and mode == "off":
        raise PersistedQueryError(200, "PersistedQueryNotSupported", "PERSISTED_QUERY_NOT_SUPPORTED")
    sent_hash = None
    if pq is not None:
        if not isinstance(pq, dict) or pq.get("version") != 1 or not isinstance(pq.get("sha256Hash"), str) \
                or not HASH_RE.fullmatch(pq["sha256Hash"]):
            raise PersistedQueryError(400, "extensions.persistedQuery must be {\"version\": 1, \"sha256Hash\": "
                                      "\"<64 lower-case hex digits>\"}", "BAD_REQUEST")
        sent_hash = pq["sha256Hash"]
    if query is not None:
        query_hash = sha256_hex(query)
        if sent_hash is not None and sent_hash != query_hash:
            raise PersistedQueryError(400, "provided sha does not match query", "BAD_REQUEST")
        if mode == "allowlist":
            if query_hash not in load_manifest(conf().STRATA_PERSISTED_QUERY_MANIFEST):
                raise PersistedQueryError(400, "PersistedQueryNotInList: this server only runs the operations of "
                                          "its persisted-query manifest", "PERSISTED_QUERY_NOT_IN_LIST")
        elif sent_hash is not None:
            caching.get_cache().set(f"q:{query_hash}", query.encode(), conf().STRATA_PERSISTED_QUERY_TTL_S)
        return query, query_hash
    if sent_hash is None:
        raise PersistedQueryError(400, "give `query` (the GraphQL text) or extensions.persistedQuery",
                                  "BAD_REQUEST")
    if mode == "allowlist":
        text = load_manifest(conf().STRATA_PERSISTED_QUERY_MANIFEST).get(sent_hash)
        if text is None:
            raise PersistedQueryError(400, "PersistedQueryNotInList", "PERSISTED_QUERY_NOT_IN_LIST")
        return text, sent_hash
    payload = caching.get_cache().get(f"q:{sent_hash}")
    text = payload.decode("utf-8", "replace") if payload is not None else None
    if text is None or sha256_hex(text) != sent_hash:
        raise PersistedQueryError(200, "PersistedQueryNotFound", "PERSISTED_QUERY_NOT_FOUND")
    return text, sent_hash

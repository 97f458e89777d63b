"""Bearer-token authentication for the GraphQL endpoint.

Looks a token up by its hash. A worker remembers lookups for ``STRATA_TOKEN_CACHE_S`` seconds
so a hot endpoint does not hit the database on every request; deactivating a token therefore
takes effect within that time. An expiry is checked on every request, remembered or not.
"""

from __future__ import annotations

import dataclasses
import datetime
import threading
import time

from django.conf import settings
from django.db import close_old_connections

from .models import ApiToken, hash_token


@dataclasses.dataclass(frozen=True)
class Principal:
    token_id: int
    name: str
    rate_limit_per_minute: int
    expires_at: datetime.datetime | None = None
    #: What the token may read. Every token reads every field today; the response cache keys on
    #: the scope anyway, so that per-token scopes can never serve one token another's answer.
    scope: str = "read:all"


class AuthError(Exception):
    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


_cache: dict[str, tuple[float, Principal | None]] = {}
_lock = threading.Lock()


#: Tokens are ``strata_`` + 43 characters; anything much longer is refused before hashing.
MAX_TOKEN_CHARS = 200


def _bearer(header: str | None) -> str:
    if not header:
        raise AuthError("missing Authorization header: send `Authorization: Bearer <token>`")
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise AuthError("Authorization header must be `Bearer <token>`")
    if len(token) > MAX_TOKEN_CHARS:
        raise AuthError(f"the token is over {MAX_TOKEN_CHARS} characters; API tokens are about 50")
    return token


def authenticate(header: str | None) -> Principal:
    token = _bearer(header)
    digest = hash_token(token)
    now = time.monotonic()
    hit = _cache.get(digest)
    if hit is not None and hit[0] > now:
        principal = hit[1]
    else:
        principal = _lookup(digest)
        ttl = settings.STRATA_TOKEN_CACHE_S
        if ttl > 0:
            with _lock:
                if len(_cache) > 10_000:
                    _cache.clear()
                _cache[digest] = (now + ttl, principal)
    if principal is None:
        raise AuthError("invalid or inactive API token")
    if principal.expires_at is not None and principal.expires_at <= datetime.datetime.now(datetime.timezone.utc):
        raise AuthError(f"API token {principal.name!r} expired at {principal.expires_at:%Y-%m-%dT%H:%M:%SZ}; "
                        "issue a new one with `strata token create NAME`")
    return principal


def _lookup(digest: str) -> Principal | None:
    # The endpoint runs outside Django's request handling: close stale connections around the
    # query, as Django does around each request.
    close_old_connections()
    try:
        row = ApiToken.objects.filter(key_hash=digest, is_active=True).only(
            "id", "name", "rate_limit_per_minute", "expires_at").first()
    finally:
        close_old_connections()
    if row is None:
        return None
    return Principal(row.id, row.name, settings.STRATA_RATE_LIMIT_PER_MINUTE
                     if row.rate_limit_per_minute is None else row.rate_limit_per_minute, row.expires_at)

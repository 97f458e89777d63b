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

from .models import ApiToken, hash_token


@dataclasses.dataclass(frozen=True)
class Principal:
    token_id: int
    name: str
    rate_limit_per_minute: int
    expires_at: datetime.datetime | None = None


class AuthError(Exception):
    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


_cache: dict[str, tuple[float, Principal | None]] = {}
_lock = threading.Lock()


def _bearer(header: str | None) -> str:
    if not header:
        raise AuthError("missing Authorization header: send `Authorization: Bearer <token>`")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthError("Authorization header must be `Bearer <token>`")
    return token.strip()


def authenticate(header: str | None) -> Principal:
    token = _bearer(header)
    digest = hash_token(token)
    now = time.monotonic()
    ttl = settings.STRATA_TOKEN_CACHE_S
    hit = _cache.get(digest)
    if hit is not None and hit[0] > now:
        principal = hit[1]
    else:
        row = ApiToken.objects.filter(key_hash=digest, is_active=True).only(
            "id", "name", "rate_limit_per_minute", "expires_at").first()
        principal = None if row is None else Principal(
            row.id, row.name, settings.STRATA_RATE_LIMIT_PER_MINUTE
            if row.rate_limit_per_minute is None else row.rate_limit_per_minute, row.expires_at)
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

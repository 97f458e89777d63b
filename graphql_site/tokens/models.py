"""API tokens. Only a SHA-256 of each token is stored; the token itself is shown once.

SHA-256 (not a slow password hash) is right here: tokens are 256 random bits, so there is
nothing to brute-force, and every request must be able to look its token up quickly.
"""

from __future__ import annotations

import hashlib
import secrets

from django.db import models

TOKEN_PREFIX = "strata_"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class ApiToken(models.Model):
    name = models.CharField(max_length=100, unique=True, help_text="Who or what uses this token.")
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    #: The first characters of the token, to recognise it in the admin without revealing it.
    key_prefix = models.CharField(max_length=16, editable=False)
    is_active = models.BooleanField(default=True)
    rate_limit_per_minute = models.PositiveIntegerField(
        null=True, blank=True,
        help_text="Requests per minute; empty = STRATA_RATE_LIMIT_PER_MINUTE, 0 = unlimited.")
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(
        null=True, blank=True, help_text="The token is refused from this instant on; empty = never expires.")

    class Meta:
        verbose_name = "API token"
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.key_prefix}…)"

    @classmethod
    def issue(cls, name: str, rate_limit_per_minute: int | None = None,
              expires_at=None) -> tuple["ApiToken", str]:
        """Create a token; returns (row, token). The token is not stored and cannot be shown again.

        ``expires_at``: an aware datetime after which the token is refused, or None (never)."""
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        row = cls.objects.create(name=name, key_hash=hash_token(token), key_prefix=token[:12],
                                 rate_limit_per_minute=rate_limit_per_minute, expires_at=expires_at)
        return row, token

"""Token expiry over HTTP: refused from the instant it names, even for a lookup the worker has
remembered; and the admin cannot add tokens (403), and says why on the token list."""

from __future__ import annotations

import datetime as dt
import time

from django.contrib.auth import get_user_model
from django.test import Client

Q = '{ dailyActiveUsers(date: "2026-03-02") { activeUsers } }'


def test_an_expired_token_is_refused_even_when_its_lookup_is_remembered(api):
    from django.test.utils import override_settings

    from graphql_site.tokens import auth
    from graphql_site.tokens.models import ApiToken, hash_token

    expires = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=1.5)
    _row, token = ApiToken.issue("expiring-token", rate_limit_per_minute=0, expires_at=expires)
    with override_settings(STRATA_TOKEN_CACHE_S=60):
        assert api.post(Q, token=token)[0] == 200
        assert hash_token(token) in auth._cache  # the worker remembers the lookup for 60 s
        time.sleep(max(0.0, (expires - dt.datetime.now(dt.timezone.utc)).total_seconds()) + 0.1)
        status, body = api.post(Q, token=token)
    assert status == 401, body
    message = body["errors"][0]["message"]
    assert "expired" in message and "strata token create" in message


def test_a_never_expiring_token_has_no_expiry(api):
    from graphql_site.tokens.models import ApiToken

    row, token = ApiToken.issue("forever-token", rate_limit_per_minute=0)
    assert row.expires_at is None and api.post(Q, token=token)[0] == 200


def test_the_admin_cannot_add_tokens_and_says_why():
    user = get_user_model().objects.create_superuser("token-admin", "a@example.com", "pw-token-admin")
    client = Client()
    client.force_login(user)
    assert client.get("/admin/strata_tokens/apitoken/add/").status_code == 403
    page = client.get("/admin/strata_tokens/apitoken/").content.decode()
    assert "Tokens cannot be added here, on purpose" in page and "strata token create" in page

"""``strata token create|list|revoke``: API tokens for the GraphQL endpoint.

A token is shown once, by ``create``; only its SHA-256 is stored (``graphql_site/tokens``), which
is also why the Django admin can list, edit and deactivate tokens but not add them.
Works on a fresh home: Django's migrations run first.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import sys

_DURATION = re.compile(r"^(\d+)([dhm])$")
_UNITS = {"d": "days", "h": "hours", "m": "minutes"}


def duration(text: str) -> dt.timedelta:
    """``30d``, ``12h`` or ``90m`` → timedelta (argparse type)."""
    match = _DURATION.match(text.strip())
    if not match or int(match.group(1)) == 0:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a duration; use a positive number of days, hours or minutes: 30d, 12h, 90m")
    return dt.timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


def register(sub) -> None:
    p = sub.add_parser("token", help="create, list or revoke API tokens",
                       description="API tokens for /graphql (`Authorization: Bearer <token>`). "
                       "The Django admin cannot add tokens on purpose: a token is shown only once, "
                       "by `strata token create`, and only its hash is stored.")
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    c = actions.add_parser("create", help="issue a token and print it (once)")
    c.add_argument("name", help="unique name of the client that uses it, e.g. my-dashboard")
    c.add_argument("--expires-in", type=duration, metavar="DURATION",
                   help="refuse the token after this long: 30d, 12h or 90m (default: never)")
    c.add_argument("--rate-limit", type=int, metavar="N",
                   help="requests per minute for this token (0 = unlimited; default STRATA_RATE_LIMIT_PER_MINUTE)")
    c.set_defaults(func=run_create)
    ls = actions.add_parser("list", help="every token: name, prefix, state, expiry, rate limit")
    ls.add_argument("--json", action="store_true", help="print one JSON array")
    ls.set_defaults(func=run_list)
    r = actions.add_parser("revoke", help="deactivate a token (kept for the record)")
    r.add_argument("name", help="the token's name (see `strata token list`)")
    r.set_defaults(func=run_revoke)


def _models():
    from strata.commands import serve

    serve.setup_django()
    from graphql_site.tokens.models import ApiToken

    return ApiToken


def _home() -> str:
    from strata_core import paths

    return str(paths.home_path())


def run_create(args) -> int:
    from django.db import IntegrityError
    from django.utils import timezone

    ApiToken = _models()
    if args.rate_limit is not None and args.rate_limit < 0:
        print(f"strata token create: --rate-limit {args.rate_limit}: must be >= 0 (0 = unlimited)", file=sys.stderr)
        return 2
    expires_at = timezone.now() + args.expires_in if args.expires_in else None
    try:
        row, token = ApiToken.issue(args.name, args.rate_limit, expires_at=expires_at)
    except IntegrityError:
        print(f"strata token create: a token named {args.name!r} already exists (names stay taken after "
              "`strata token revoke`, for the record); pick another name", file=sys.stderr)
        return 2
    print(token)
    expiry = f"expires {row.expires_at:%Y-%m-%dT%H:%M:%SZ}" if row.expires_at else "never expires"
    print(f"strata token create: {args.name!r} ({row.key_prefix}…), {expiry}; shown once, only its hash "
          f"is stored (home {_home()}). Send it as `Authorization: Bearer <token>`.", file=sys.stderr)
    return 0


def _row(t) -> dict:
    return {"name": t.name, "prefix": t.key_prefix, "active": t.is_active,
            "expires_at": t.expires_at.strftime("%Y-%m-%dT%H:%M:%SZ") if t.expires_at else None,
            "rate_limit_per_minute": t.rate_limit_per_minute,
            "created_at": t.created_at.strftime("%Y-%m-%dT%H:%M:%SZ")}


def run_list(args) -> int:
    from django.utils import timezone

    ApiToken = _models()
    now = timezone.now()
    rows = []
    for t in ApiToken.objects.order_by("name"):
        row = _row(t)
        row["state"] = ("revoked" if not t.is_active else
                        "expired" if t.expires_at and t.expires_at <= now else "active")
        rows.append(row)
    if args.json:
        print(json.dumps(rows))
        return 0
    header = ("name", "prefix", "state", "expires_at", "rate_limit_per_minute", "created_at")
    table = [[str(r[h] if r[h] is not None else "-") for h in header] for r in rows]
    widths = [max([len(h)] + [len(line[i]) for line in table]) for i, h in enumerate(header)]
    print("  ".join(h.ljust(w) for h, w in zip(header, widths)))
    for line in table:
        print("  ".join(v.ljust(w) for v, w in zip(line, widths)))
    print(f"({len(rows)} token{'s' if len(rows) != 1 else ''}; home {_home()})", file=sys.stderr)
    return 0


def run_revoke(args) -> int:
    from django.conf import settings

    ApiToken = _models()
    updated = ApiToken.objects.filter(name=args.name).update(is_active=False)
    if not updated:
        names = list(ApiToken.objects.order_by("name").values_list("name", flat=True))
        print(f"strata token revoke: no token named {args.name!r}; tokens: {', '.join(names) or 'none'}",
              file=sys.stderr)
        return 2
    print(f"revoked {args.name!r}: a running server refuses it within {settings.STRATA_TOKEN_CACHE_S} s "
          f"(STRATA_TOKEN_CACHE_S; home {_home()})")
    return 0

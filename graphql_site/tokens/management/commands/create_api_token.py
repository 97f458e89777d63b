"""``manage.py create_api_token NAME [--rate-limit N]``: prints a new token, once."""

from django.core.management.base import BaseCommand, CommandError
from django.db import IntegrityError

from graphql_site.tokens.models import ApiToken


class Command(BaseCommand):
    help = "Create an API token and print it. Only its hash is stored: copy it now."

    def add_arguments(self, parser):
        parser.add_argument("name", help="unique name of the client using the token")
        parser.add_argument("--rate-limit", type=int, default=None, metavar="N",
                            help="requests per minute for this token (0 = unlimited; "
                                 "default STRATA_RATE_LIMIT_PER_MINUTE)")

    def handle(self, *args, name, rate_limit, **options):
        if rate_limit is not None and rate_limit < 0:
            raise CommandError(f"--rate-limit {rate_limit}: must be >= 0 (0 = unlimited)")
        try:
            _row, token = ApiToken.issue(name, rate_limit)
        except IntegrityError:
            raise CommandError(f"a token named {name!r} already exists; pick another name") from None
        self.stdout.write(token)

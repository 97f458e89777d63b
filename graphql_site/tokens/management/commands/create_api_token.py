"""``manage.py create_api_token NAME [--rate-limit N]``: prints a new token, once.

On a fresh ``$STRATA_HOME`` (before the first ``strata serve``) Django's tables do not exist
yet: the command applies the migrations first, as ``strata serve`` does, and says so on stderr.
"""

from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db import DEFAULT_DB_ALIAS, IntegrityError, connections
from django.db.migrations.executor import MigrationExecutor

from graphql_site.tokens.models import ApiToken


def migrate_if_needed(stderr) -> None:
    """Apply pending migrations (the same ``migrate`` that ``strata serve`` runs)."""
    connection = connections[DEFAULT_DB_ALIAS]
    executor = MigrationExecutor(connection)
    pending = executor.migration_plan(executor.loader.graph.leaf_nodes())
    if pending:
        call_command("migrate", interactive=False, verbosity=0)
        stderr.write(f"applied {len(pending)} pending migration(s) to the {connection.vendor} database "
                     f"({connection.settings_dict['NAME']}) first\n")


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
        migrate_if_needed(self.stderr)
        try:
            _row, token = ApiToken.issue(name, rate_limit)
        except IntegrityError:
            raise CommandError(f"a token named {name!r} already exists; pick another name") from None
        self.stdout.write(token)

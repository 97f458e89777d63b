"""``manage.py publish_data_version BUILD_ID``: tell the API (BigQuery mode) that the marts changed.

The BigQuery transform job runs this after a successful build; every API worker sees the new
id within two seconds and keys its cache on it, so all cached results are invalidated. Locally
``strata transform`` writes ``$STRATA_HOME/data_version`` instead and nothing is needed.
"""

from django.core.management.base import BaseCommand, CommandError

from graphql_site.querylayer.engine import publish_version, read_published_version


class Command(BaseCommand):
    help = "Publish the warehouse build id (BigQuery mode) so API caches invalidate."

    def add_arguments(self, parser):
        parser.add_argument("build_id", help="the id of the build that just finished")

    def handle(self, *args, build_id, **options):
        if not build_id.strip():
            raise CommandError("build_id must not be empty")
        try:
            publish_version(build_id.strip())
        except RuntimeError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"data version is now {read_published_version()}")

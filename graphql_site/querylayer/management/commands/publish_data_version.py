"""``manage.py publish_data_version [BUILD_ID]``: tell the API (BigQuery mode) that the marts changed.

``strata transform --target bigquery`` publishes after every successful build (and ``strata
data-version publish`` does from anywhere); this command does the same from the API's own
container, to the store the API reads (``engine.version_store``). Every API worker sees the new
id within two seconds and keys its cache on it, so all cached results are invalidated.
"""

from django.core.management.base import BaseCommand, CommandError

from graphql_site.querylayer.engine import version_store
from strata_core import dataversion


class Command(BaseCommand):
    help = "Publish the warehouse build id (BigQuery mode) so API caches invalidate."

    def add_arguments(self, parser):
        parser.add_argument("build_id", nargs="?", help="the id of the build that just finished (default: a new id)")

    def handle(self, *args, build_id=None, **options):
        if build_id is not None and not build_id.strip():
            raise CommandError("build_id must not be empty")
        try:
            store = version_store()
            store.publish((build_id or dataversion.new_build_id()).strip())
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"data version is now {store.read()}")

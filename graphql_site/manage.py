#!/usr/bin/env python
"""Django's command-line utility for the Strata API (``python graphql_site/manage.py ...``)."""

import os
import pathlib
import sys


def main() -> None:
    # The project is the ``graphql_site`` package; make the repository root importable.
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "graphql_site.settings.local")
    from strata_core import paths

    paths.private_files()  # the SQLite database (sessions, password hashes) is private: 0600
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()

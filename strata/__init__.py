"""Strata: event analytics on Beam, dbt and GraphQL. This package is the ``strata`` CLI and local runtime."""

__version__ = "0.1.0"

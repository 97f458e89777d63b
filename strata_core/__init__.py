"""Strata's dependency-free core, shared by every image: the event contract, the schemas
derived from it, where local state lives, and the local lake's writer.

``beam_pipelines`` (the ingest jobs), ``graphql_site`` (the API) and ``strata`` (the CLI) import
this package; it imports none of them.
"""

"""Strata's Apache Beam pipelines: one codebase for the batch and streaming ingest jobs."""

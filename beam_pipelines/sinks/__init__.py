"""Sinks of the raw layer: the local Parquet lake (embedded default) and BigQuery (production)."""

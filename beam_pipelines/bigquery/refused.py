"""What happens to rows BigQuery refuses: they become dead letters, never vanish.

Counters (namespace ``strata``): ``bigquery_refused`` (rows turned into write dead letters;
``batch.summarize`` reads it) and ``bigquery_dead_letters_unwritable``.
"""

from __future__ import annotations

from typing import Iterable

import apache_beam as beam
from apache_beam.metrics import Metrics

from beam_pipelines.bigquery.rows import error_list, failed_insert_to_dead_letter

METRICS_NAMESPACE = "strata"


class FailedInsertToDeadLetterFn(beam.DoFn):
    """``(destination, row, errors)`` from ``failed_rows_with_errors`` -> dead-letter record."""

    def __init__(self, source: str = "batch"):
        self.source = source
        self.refused = Metrics.counter(METRICS_NAMESPACE, "bigquery_refused")

    def process(self, failed) -> Iterable[dict]:
        destination, row, errors = failed
        self.refused.inc()
        yield failed_insert_to_dead_letter(destination, row, errors, source=self.source)


class UnwritableDeadLetterError(RuntimeError):
    """BigQuery refused a dead letter too. Raised so the run fails instead of losing the record."""


class FailOnUnwritableDeadLetterFn(beam.DoFn):
    def __init__(self):
        self.unwritable = Metrics.counter(METRICS_NAMESPACE, "bigquery_dead_letters_unwritable")

    def process(self, failed):
        destination, row, errors = failed
        self.unwritable.inc()
        raise UnwritableDeadLetterError(
            f"BigQuery refused dead letter row_key={row.get('row_key')!r} "
            f"error_type={row.get('error_type')!r} for {destination}: {error_list(errors)}. "
            "Dead letters are the last stop, so the run fails rather than dropping it; fix the "
            "dead-letter table (schema, permissions) and rerun.")

"""``WriteRawBigQuery``: the raw tables' production sink (see ``beam_pipelines/bigquery.py``)."""

from __future__ import annotations

import apache_beam as beam

from beam_pipelines import bigquery as bq
from beam_pipelines.transforms import DeadLetterBatch, RowsPart


def rows_of(part: RowsPart):
    return part.rows.to_pylist()


def dead_letters_of(batch: DeadLetterBatch):
    return batch.rows


class WriteRawBigQuery(beam.PTransform):
    """``{"events", "users", "dead_letters"}`` PCollections → the ``raw`` dataset in BigQuery.

    Rows BigQuery refuses come back as ``write``-stage dead letters (already written to
    ``dead_letters``) and are counted by ``strata/bigquery_refused``; nothing is retried forever.
    ``bigquery_client`` is ``None`` in production and a :class:`bq.LoopbackClient` for a fake.
    """

    def __init__(self, project: str, dataset: str, bigquery_client=None):
        super().__init__()
        self.project, self.dataset, self.client = project, dataset, bigquery_client

    def expand(self, pcolls):
        refused_events = (pcolls["events"]
                          | "EventRows" >> beam.FlatMap(rows_of)
                          | "WriteEvents" >> bq.WriteRawToBigQuery(self.project, self.dataset,
                                                                   bigquery_client=self.client))
        refused_users = (pcolls["users"]
                         | "UserRows" >> beam.FlatMap(rows_of)
                         | "WriteUsers" >> bq.WriteRawToBigQuery(self.project, self.dataset, events_table="users",
                                                                 bigquery_client=self.client))
        _ = (pcolls["dead_letters"]
             | "DeadLetterRows" >> beam.FlatMap(dead_letters_of)
             | "WriteDeadLetters" >> bq.WriteDeadLettersToBigQuery(self.project, self.dataset,
                                                                  bigquery_client=self.client))
        return (refused_events, refused_users) | "FlattenRefused" >> beam.Flatten()

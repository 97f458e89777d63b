"""``WriteRawLocal``: raw rows → Parquet parts of the local lake (see ``strata/warehouse.py``).

Rows are grouped by (table, input file, partition) and each group becomes one part named after
the input file, e.g. ``raw/events/event_date=2026-01-31/<source-hash>.parquet``. The name does
not depend on how the job chunked or distributed the work, and each write atomically replaces
the part, so re-ingesting the same input rewrites the same parts (no duplicates) and readers
never see a half-written file.
"""

from __future__ import annotations

import pathlib

import apache_beam as beam
import pyarrow as pa
import pyarrow.compute as pc
from apache_beam.metrics import Metrics

from beam_pipelines.transforms import DeadLetterBatch, RowsPart, dead_letters_table


def key_rows(part: RowsPart):
    """``RowsPart`` → ((table, part, partition), rows) per ``event_date`` partition."""
    rows = part.rows
    if part.table != "events":
        yield (part.table, part.part, ""), rows
        return
    dates = pc.unique(rows.column("event_date")).to_pylist()
    for day in dates:
        subset = rows.filter(pc.equal(rows.column("event_date"), day)) if len(dates) > 1 else rows
        yield ("events", part.part, f"event_date={day.isoformat()}"), subset


def key_dead_letters(batch: DeadLetterBatch):
    yield ("dead_letters", batch.source_key, ""), dead_letters_table(batch.rows)


class WritePartFn(beam.DoFn):
    def __init__(self, lake: str):
        self.lake = lake
        self.written = {t: Metrics.counter("strata", f"{t}_written") for t in ("events", "users", "dead_letters")}

    def process(self, element):
        from strata import warehouse  # local sink only: keeps the Dataflow image free of it

        (table, part, partition), tables = element
        rows = pa.concat_tables(list(tables))
        warehouse.write_part(table, part, rows, partition=partition or None, lake=pathlib.Path(self.lake))
        self.written[table].inc(rows.num_rows)
        yield table, rows.num_rows


class WriteRawLocal(beam.PTransform):
    """``{"events", "users", "dead_letters"}`` PCollections → the local Parquet lake under ``lake``."""

    def __init__(self, lake: str):
        super().__init__()
        self.lake = str(lake)

    def expand(self, pcolls):
        rows = ((pcolls["events"], pcolls["users"])
                | "FlattenRows" >> beam.Flatten()
                | "KeyRowsByPart" >> beam.FlatMap(key_rows))
        dead = pcolls["dead_letters"] | "KeyDeadLettersByPart" >> beam.FlatMap(key_dead_letters)
        return ((rows, dead)
                | "FlattenParts" >> beam.Flatten()
                | "GroupByPart" >> beam.GroupByKey()
                | "WriteParts" >> beam.ParDo(WritePartFn(self.lake)))

"""``WriteRawLocal``: raw rows → Parquet parts of the local lake (see ``strata_core/lake.py``).

Each chunk's rows become one part per table (and, for events, per ``event_date`` partition),
named after the chunk: ``raw/events/event_date=2026-01-31/<source-hash>-<chunk>.parquet``.
Chunk boundaries depend only on the input file (``beam_pipelines.reading``), and each write
atomically replaces its part, so re-ingesting the same input rewrites the same parts (no
duplicates) and readers never see a half-written file.

Every write is fused into the step that produced the rows: no Flatten and no shuffle, because on
Beam's local runner each of those moves all rows through its data plane (measured: ~40 % of the
job's time).
"""

from __future__ import annotations

import pathlib

import apache_beam as beam
import pyarrow.compute as pc
from apache_beam.metrics import Metrics

from beam_pipelines.transforms import DeadLetterBatch, RowsPart, dead_letters_table
from strata_core.lake import write_part


def partitions(part: RowsPart):
    """``RowsPart`` → (hive partition or "", rows): events split by ``event_date``."""
    rows = part.rows
    if part.table != "events":
        yield "", rows
        return
    dates = pc.unique(rows.column("event_date")).to_pylist()
    for day in dates:
        subset = rows.filter(pc.equal(rows.column("event_date"), day)) if len(dates) > 1 else rows
        yield f"event_date={day.isoformat()}", subset


class WriteRowsPartFn(beam.DoFn):
    def __init__(self, lake: str, durable: bool = False):
        self.lake = lake
        self.durable = durable
        self.written = {t: Metrics.counter("strata", f"{t}_written") for t in ("events", "users", "dead_letters")}

    def process(self, part):
        if isinstance(part, DeadLetterBatch):
            part = RowsPart("dead_letters", f"{part.batch_id}-{part.step}",
                            dead_letters_table(part.rows))
        for partition, rows in partitions(part):
            write_part(part.table, part.part, rows, partition=partition or None,
                       lake=pathlib.Path(self.lake), durable=self.durable)
        self.written[part.table].inc(part.rows.num_rows)
        yield part.table, part.rows.num_rows


class WriteRawLocal(beam.PTransform):
    """``{name: PCollection}`` of ``RowsPart`` s / ``DeadLetterBatch`` es → the local Parquet lake.

    Names are CamelCase step suffixes (``Events``, ``Users0``, ``DeadLetters1`` ...).
    ``durable``: fsync every part before the step returns (see ``strata_core.lake.write_part``).
    """

    def __init__(self, lake: str, durable: bool = False):
        super().__init__()
        self.lake = str(lake)
        self.durable = durable

    def expand(self, pcolls):
        # One writer per producer, each fused into it (a Flatten here would materialise all rows).
        return {name: pc | f"Write{name}" >> beam.ParDo(WriteRowsPartFn(self.lake, self.durable))
                for name, pc in sorted(pcolls.items())}

"""Reading input files into chunks of records.

Per-element overhead dominates Beam's local runners (see BENCHMARKS.md), so the batch job moves
batches (*chunks*) of up to ``CHUNK_RECORDS`` records between steps, not single records.

Work is spread in two steps: ``PlanRanges`` cuts each NDJSON file into byte ranges that end on a
line break (counting lines on the way, so every record keeps its file line number), the small
range descriptors are redistributed, and ``ReadRanges`` reads each range where it lands. Only
descriptors cross the shuffle, never record bytes. Compressed, Avro and Parquet files are read
whole, as one range.
"""

from __future__ import annotations

import sys
import time
from typing import Iterator, NamedTuple

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics

from beam_pipelines.records import FileOrigin, RecordBatch, source_key

#: Records per chunk handed from step to step (an NDJSON range usually fits in one chunk).
CHUNK_RECORDS = 100_000
#: Target size of one NDJSON read range (ranges end on the next line break).
RANGE_BYTES = 32 * 1024 * 1024
# Both constants decide chunk boundaries, and the local sink names its Parquet parts after the
# chunk (``<source-hash>-<chunk index>``): that is what makes a rerun replace its own parts.
# Changing either one means a rerun of *old* input writes new part names next to the old ones.
_COMPRESSED = (".gz", ".bz2", ".zst", ".deflate")
_BOM = b"\xef\xbb\xbf"

_EXTENSIONS = {
    ".jsonl": "ndjson", ".ndjson": "ndjson", ".json": "ndjson",
    ".avro": "avro", ".parquet": "parquet", ".pq": "parquet",
}


def detect_format(path: str, requested: str = "auto") -> str:
    if requested != "auto":
        return requested
    name = path.lower()
    for compressed in _COMPRESSED:
        if name.endswith(compressed):
            name = name[: -len(compressed)]
    for ext, fmt in _EXTENSIONS.items():
        if name.endswith(ext):
            return fmt
    raise ValueError(f"cannot tell the format of {path!r} from its extension; expected one of "
                     f"{sorted(_EXTENSIONS)} (optionally .gz), or pass --input_format ndjson|avro|parquet")


def expand_inputs(patterns: list[str]) -> list[str]:
    """Expand local or gs:// globs to a sorted list of files; error if a pattern matches nothing."""
    files: list[str] = []
    for result in FileSystems.match(list(patterns)):
        matched = [m.path for m in result.metadata_list if not m.path.endswith("/")]
        if not matched:
            raise FileNotFoundError(f"--input {result.pattern!r} matched no files")
        files.extend(matched)
    return sorted(set(files))


class FileRange(NamedTuple):
    """Bytes ``[start, end)`` of ``path`` (``end == -1``: to the end), whose first line is ``first_line``."""

    path: str
    fmt: str
    index: int
    start: int
    end: int
    first_line: int


class PlanRangesFn(beam.DoFn):
    """Input path → :class:`FileRange` s of about ``RANGE_BYTES``, each ending on a line break."""

    def __init__(self, input_format: str = "auto", range_bytes: int = RANGE_BYTES):
        self.input_format = input_format
        self.range_bytes = range_bytes

    def process(self, path: str) -> Iterator[FileRange]:
        fmt = detect_format(path, self.input_format)
        if fmt != "ndjson" or path.lower().endswith(_COMPRESSED):
            yield FileRange(path, fmt, 0, 0, -1, 1)
            return
        start, line, index = 0, 1, 0
        with FileSystems.open(path) as f:
            while True:
                block = f.read(self.range_bytes)
                if not block:
                    break
                if not block.endswith(b"\n"):
                    block += f.readline()
                yield FileRange(path, fmt, index, start, start + len(block), line)
                line += block.count(b"\n")
                start += len(block)
                index += 1


def _chunked(numbered: Iterator[tuple[int, object]]) -> Iterator[tuple[list[int], list]]:
    """(position, record) pairs → (positions, records) lists of up to ``CHUNK_RECORDS``."""
    positions: list[int] = []
    records: list = []
    for position, record in numbered:
        positions.append(position)
        records.append(record)
        if len(records) == CHUNK_RECORDS:
            yield positions, records
            positions, records = [], []
    if records:
        yield positions, records


class ReadRangeFn(beam.DoFn):
    """:class:`FileRange` → :class:`RecordBatch` es. Blank NDJSON lines are skipped (and counted).

    ``kind`` (``events`` or ``users``) only names the counters.
    """

    def __init__(self, kind: str = "events", progress: bool = False):
        self.kind = kind
        self.progress = progress
        self.blank_lines = Metrics.counter("strata", f"{kind}_blank_lines")
        self.read = Metrics.counter("strata", f"{kind}_read")
        self._total = 0
        self._started = None

    def process(self, file_range: FileRange) -> Iterator[RecordBatch]:
        reader = {"ndjson": self._ndjson, "avro": self._avro, "parquet": self._parquet}[file_range.fmt]
        origin = FileOrigin(file_range.path, file_range.fmt, source_key(file_range.path))
        if self._started is None:
            self._started = time.monotonic()
        for sub, (positions, records) in enumerate(reader(file_range)):
            self.read.inc(len(records))
            # Chunk number within the file: range * 10_000 + chunk within the range.
            batch_id = f"{origin.key}-{file_range.index * 10_000 + sub:07d}"
            yield RecordBatch(origin, batch_id, positions, records, time.time_ns() // 1000)
            if self.progress:
                self._total += len(records)
                rate = self._total / max(time.monotonic() - self._started, 1e-9)
                print(f"\r  {self._total:,} records read ({rate:,.0f}/s)", end="", file=sys.stderr, flush=True)

    def _ndjson(self, file_range: FileRange):
        with FileSystems.open(file_range.path) as f:
            if file_range.end < 0:
                data = f.read()
            else:
                f.seek(file_range.start)
                data = f.read(file_range.end - file_range.start)
        if file_range.start == 0 and data.startswith(_BOM):
            data = data[len(_BOM):]  # a UTF-8 byte-order mark (Windows editors) is not data
        lines = data.split(b"\n")
        if lines and not lines[-1]:
            lines.pop()  # the range ends with a line break
        blank = 0

        def records():
            nonlocal blank
            for number, line in enumerate(lines, file_range.first_line):
                if line.endswith(b"\r"):
                    line = line[:-1]  # Windows line endings
                if line.strip():
                    yield number, line
                else:
                    blank += 1

        yield from _chunked(records())
        self.blank_lines.inc(blank)

    def _avro(self, file_range: FileRange):
        import fastavro

        with FileSystems.open(file_range.path) as f:
            yield from _chunked(enumerate(fastavro.reader(f), 1))

    def _parquet(self, file_range: FileRange):
        import pyarrow.parquet as pq

        number = 0
        with FileSystems.open(file_range.path) as f:
            for batch in pq.ParquetFile(f).iter_batches(batch_size=CHUNK_RECORDS):
                records = batch.to_pylist()
                yield list(range(number + 1, number + 1 + len(records))), records
                number += len(records)


class ReadRecordChunks(beam.PTransform):
    """Globs (local or ``gs://``) → :class:`RecordBatch` es of records, spread across workers."""

    def __init__(self, patterns: list[str], kind: str = "events", input_format: str = "auto",
                 progress: bool = False):
        super().__init__()
        self.patterns = list(patterns)
        self.kind = kind
        self.input_format = input_format
        self.progress = progress

    def expand(self, pbegin):
        # Globs are expanded and formats checked at construction time, so a pattern that matches
        # nothing, or a file of unknown type, fails before the job starts.
        files = expand_inputs(self.patterns)
        for path in files:
            detect_format(path, self.input_format)
        return (pbegin
                | "ListFiles" >> beam.Create(files)
                | "PlanRanges" >> beam.ParDo(PlanRangesFn(self.input_format)).with_output_types(FileRange)
                | "SpreadRanges" >> beam.Reshuffle()
                | "ReadRanges" >> beam.ParDo(ReadRangeFn(self.kind, self.progress)).with_output_types(RecordBatch))

"""Reading input files into chunks of records.

Per-element overhead dominates Beam's local runners (see BENCHMARKS.md), so the batch job moves
batches (*chunks*) of up to ``CHUNK_RECORDS`` records between steps, not single records.

Work is spread in two steps: ``PlanRanges`` cuts each NDJSON file into byte ranges that end on a
line break (counting lines on the way, so every record keeps its file line number), the small
range descriptors are redistributed, and ``ReadRanges`` reads each range where it lands. Only
descriptors cross the shuffle, never record bytes. Compressed, Avro and Parquet files are read
whole, as one range.

Everything is read as a stream of blocks, decompression included, so memory stays bounded by a
chunk whatever a file holds (a gzip bomb, a 10 GB line). A file that can't be read to its end --
cut short, not what its extension says, unreadable -- yields the records before the failure and
then a batch carrying a :class:`~beam_pipelines.records.FileFailure`, which ``ParseEvents`` turns
into one dead letter for the file (``contract.FILE_ERROR_TYPES``); the other files go on.
"""

from __future__ import annotations

import bz2
import re
import sys
import time
import zlib
from typing import Iterator, NamedTuple

import apache_beam as beam
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics

from beam_pipelines.records import FileFailure, FileOrigin, RecordBatch, source_key
from strata_core import contract as c

#: Records per chunk handed from step to step (an NDJSON range usually fits in one chunk).
CHUNK_RECORDS = 100_000
#: Target size of one NDJSON read range (ranges end on the next line break).
RANGE_BYTES = 32 * 1024 * 1024
# Both constants decide chunk boundaries, and the local sink names its Parquet parts after the
# chunk (``<source-hash>-<chunk index>``): that is what makes a rerun replace its own parts.
# Changing either one means a rerun of *old* input writes new part names next to the old ones.
#: Bytes read (or decompressed) at a time: the unit of memory a reader holds besides its chunk.
BLOCK_BYTES = 8 * 1024 * 1024
_COMPRESSED = (".gz", ".bz2", ".zst", ".deflate")
_BOM = b"\xef\xbb\xbf"
_WHITESPACE = b" \t\r\n\f\v"
#: A line that starts with whitespace (it may be blank).
_INDENT = (b" ", b"\t", b"\r", b"\f", b"\v")
_INDENTED = re.compile(rb"\n[ \t\r\f\v]")
_CRLF = re.compile(rb"\r(?=\n)")
_ZLIB = type(zlib.decompressobj())

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


def input_bytes(patterns: list[str]) -> int:
    """Total size of the files the globs match (0 when that can't be told)."""
    try:
        return sum(m.size_in_bytes for r in FileSystems.match(list(patterns)) for m in r.metadata_list)
    except Exception:  # noqa: BLE001 - only a sizing hint; the job reports real errors itself
        return 0


class FileRange(NamedTuple):
    """Bytes ``[start, end)`` of ``path`` (``end == -1``: to the end), whose first line is ``first_line``.

    ``failure``: planning already found the file unreadable.
    """

    path: str
    fmt: str
    index: int
    start: int
    end: int
    first_line: int
    failure: FileFailure | None = None


class FileReadError(Exception):
    """A file could not be read to its end; carries the :class:`FileFailure` to report."""

    def __init__(self, failure: FileFailure):
        super().__init__(f"{failure.error_type} at byte {failure.offset}: {failure.reason}")
        self.failure = failure


# ---- bytes of a file, decompressed as they are read -----------------------------------------------

def _decompressor(path: str):
    """A zlib-like decompressor factory for a compressed file name, or ``None``."""
    name = path.lower()
    if name.endswith(".gz"):
        return lambda: zlib.decompressobj(zlib.MAX_WBITS | 16)
    if name.endswith(".deflate"):
        return zlib.decompressobj  # zlib format, as Beam's CompressionTypes.DEFLATE
    if name.endswith(".bz2"):
        return bz2.BZ2Decompressor
    if name.endswith(".zst"):
        import zstandard

        return lambda: zstandard.ZstdDecompressor().decompressobj()
    return None


class _Source:
    """The bytes of one file (``[start, end)``, decompressed if its name says so), in blocks of
    about ``BLOCK_BYTES``; ``offset`` is how far into the file reading got."""

    def __init__(self, path: str, start: int = 0, end: int = -1):
        self.path, self.start, self.end = path, start, end
        self.offset = start
        self.produced = 0

    def fail(self, error_type: str, reason: str):
        raise FileReadError(FileFailure(error_type, reason, self.offset))

    def blocks(self) -> Iterator[bytes]:
        try:
            f = FileSystems.open(self.path, compression_type=CompressionTypes.UNCOMPRESSED)
        except Exception as exc:  # noqa: BLE001 - missing, permission denied, ...: the file's dead letter
            self.fail("unreadable_file", f"cannot open the file: {exc}")
        try:
            if self.start:
                f.seek(self.start)
            factory = _decompressor(self.path)
            yield from (self._raw(f) if factory is None else self._decompressed(f, factory))
        except FileReadError:
            raise
        except OSError as exc:
            self.fail("unreadable_file", f"reading failed: {exc}")
        finally:
            f.close()

    def _read(self, f, size: int) -> bytes:
        data = f.read(size)
        self.offset += len(data)
        return data

    def _raw(self, f) -> Iterator[bytes]:
        while True:
            size = BLOCK_BYTES if self.end < 0 else min(BLOCK_BYTES, self.end - self.offset)
            data = self._read(f, size) if size > 0 else b""
            if not data:
                return
            yield data

    def _decompressed(self, f, factory) -> Iterator[bytes]:
        """Streams (several gzip members, bz2 streams or zstd frames in a row are one file), each
        call's output bounded, so a bomb costs time, never memory."""
        d, started = factory(), False
        # Input is fed in small pieces: a damaged piece loses only its own output, and zstd (which
        # has no output limit per call) can't turn one piece into much.
        feed = 4096 if self.path.lower().endswith(".zst") else 1 << 16
        buffered, size = [], 0
        while True:
            data = self._read(f, feed)
            if not data:
                break
            while data:
                if started and d.eof:
                    if not data.strip(b"\x00"):
                        break  # zero padding after the last member, as some tools write
                    d = factory()
                started = True
                try:
                    out = self._step(d, data)
                except Exception as exc:  # noqa: BLE001 - zlib.error, OSError, zstandard.ZstdError ...
                    if buffered:
                        yield b"".join(buffered)  # what decompressed before the damage is read
                    self.offset -= len(data)  # the damaged bytes are not read
                    self.fail("corrupt_file", f"not valid {self.path.rsplit('.', 1)[-1]} data after "
                              f"{self.produced:,} decompressed bytes: {exc}")
                data = out[1]
                for block in out[0]:
                    self.produced += len(block)
                    buffered.append(block)
                    size += len(block)
                if size >= BLOCK_BYTES:
                    yield b"".join(buffered)
                    buffered, size = [], 0
        if buffered:
            yield b"".join(buffered)
        if not started:
            return
        if not d.eof:
            self.fail("truncated_file", f"the compressed stream ends early, after {self.produced:,} "
                      "decompressed bytes (the file was cut short); the records before the cut were read")

    @staticmethod
    def _step(d, data: bytes) -> tuple[list[bytes], bytes]:
        """Feed ``data``; return (output blocks of at most BLOCK_BYTES, input left for a next stream)."""
        blocks = []
        if isinstance(d, bz2.BZ2Decompressor):
            out = d.decompress(data, BLOCK_BYTES)
            blocks.append(out)
            while not d.eof and not d.needs_input:
                blocks.append(d.decompress(b"", BLOCK_BYTES))
        elif isinstance(d, _ZLIB):
            out = d.decompress(data, BLOCK_BYTES)
            blocks.append(out)
            while d.unconsumed_tail and not d.eof:
                blocks.append(d.decompress(d.unconsumed_tail, BLOCK_BYTES))
        else:  # zstd, fed in small pieces
            blocks.append(d.decompress(data))
        return [b for b in blocks if b], (d.unused_data if d.eof else b"")


# ---- NDJSON lines ---------------------------------------------------------------------------------

def _line_indices(text: bytes, offsets) -> Iterator[int]:
    """Index of the line (of ``text`` split at ``\n``) holding each of the increasing ``offsets``."""
    line, searched = 0, 0
    for offset in offsets:
        line += text.count(b"\n", searched, offset)
        searched = offset
        yield line


class _Lines:
    """NDJSON byte blocks → (positions, records) chunks; blank lines skipped and counted.

    Work is per block and in C (split, search, slice), not per line: Windows line endings and
    blank lines are found by searching for them. A line longer than ``MAX_KEPT_RECORD_BYTES``
    keeps only that many bytes (it is dead-lettered as ``record_too_large`` anyway); the rest of it
    is skipped without being held.
    """

    def __init__(self, first_line: int, at_file_start: bool):
        self.line = first_line
        self.at_file_start = at_file_start
        self.blank = 0
        self.positions: list = []
        self.records: list = []
        self.pending = b""
        self.oversized = False

    def feed(self, block: bytes) -> Iterator[tuple[list, list]]:
        if self.at_file_start:
            self.at_file_start = False
            if block.startswith(_BOM):
                block = block[len(_BOM):]  # a UTF-8 byte-order mark (Windows editors) is not data
        if self.oversized:
            cut = block.find(b"\n")
            if cut < 0:
                return
            self.oversized = False
            self._add([self.pending], b"")
            self.pending, block = b"", block[cut + 1:]
        split_crlf = self.pending.endswith(b"\r") and block[:1] == b"\n"  # \r | \n across two blocks
        lines = block.split(b"\n")
        if self.pending:
            lines[0] = self.pending + lines[0]
        self.pending = lines.pop()  # after the last line break: the start of a line
        if len(self.pending) > c.MAX_KEPT_RECORD_BYTES:
            self.pending, self.oversized = self.pending[:c.MAX_KEPT_RECORD_BYTES], True
        if lines:
            if b"\r" in block:
                for i in _line_indices(block, (m.start() for m in _CRLF.finditer(block))):
                    lines[i] = lines[i][:-1]  # Windows line endings
            if split_crlf:
                lines[0] = lines[0][:-1]
            self._add(lines, block)
        yield from self._full_chunks()

    def finish(self) -> Iterator[tuple[list, list]]:
        if self.pending:  # the last line has no line break
            last = self.pending
            if last.endswith(b"\r") and not self.oversized:
                last = last[:-1]
            self._add([last], b"")
            self.pending, self.oversized = b"", False
        yield from self._full_chunks()
        if self.records:
            yield self.positions, self.records
            self.positions, self.records = [], []

    def _add(self, lines: list[bytes], text: bytes) -> None:
        """Append ``lines`` (numbered on from ``self.line``) but the blank ones; ``text`` is the
        block they were split from (it locates lines that start with whitespace)."""
        n = len(lines)
        first = self.line
        self.line += n
        blank = set()
        start = 0
        while True:  # empty lines, by C-level search
            try:
                start = lines.index(b"", start)
            except ValueError:
                break
            blank.add(start)
            start += 1
        indented = [m.start() + 1 for m in _INDENTED.finditer(text)]
        candidates = ([0] if lines[0][:1] in _INDENT else []) + list(_line_indices(text, indented))
        blank.update(i for i in candidates if i < n and not lines[i].strip(_WHITESPACE))
        if not blank:
            self.positions.extend(range(first, first + n))
            self.records.extend(lines)
            return
        self.blank += len(blank)
        previous = 0
        for i in sorted(blank) + [n]:
            self.positions.extend(range(first + previous, first + i))
            self.records.extend(lines[previous:i])
            previous = i + 1

    def _full_chunks(self) -> Iterator[tuple[list, list]]:
        while len(self.records) >= CHUNK_RECORDS:
            yield self.positions[:CHUNK_RECORDS], self.records[:CHUNK_RECORDS]
            del self.positions[:CHUNK_RECORDS], self.records[:CHUNK_RECORDS]


# ---- the steps ----------------------------------------------------------------------------------

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
        ranges, start, line = [], 0, 1
        try:
            with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
                while True:
                    block = f.read(self.range_bytes)
                    if not block:
                        break
                    if not block.endswith(b"\n"):
                        block += f.readline()
                    ranges.append(FileRange(path, fmt, len(ranges), start, start + len(block), line))
                    line += block.count(b"\n")
                    start += len(block)
        except Exception as exc:  # noqa: BLE001 - the file's dead letter, not the job's end
            error = "unreadable_file"
            yield FileRange(path, fmt, 0, 0, -1, 1, FileFailure(error, f"cannot read the file: {exc}", start))
            return
        yield from ranges


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
        sub = 0

        def batch_id() -> str:
            # Chunk number within the file: range * 10_000 + chunk within the range.
            return f"{origin.key}-{file_range.index * 10_000 + sub:07d}"

        try:
            if file_range.failure:
                raise FileReadError(file_range.failure)
            for positions, records in reader(file_range):
                self.read.inc(len(records))
                yield RecordBatch(origin, batch_id(), positions, records, time.time_ns() // 1000)
                sub += 1
                self._show_progress(len(records))
        except FileReadError as exc:
            yield RecordBatch(origin, batch_id(), [], [], time.time_ns() // 1000, exc.failure)

    def _show_progress(self, n: int) -> None:
        if self.progress:
            self._total += n
            rate = self._total / max(time.monotonic() - self._started, 1e-9)
            print(f"\r  {self._total:,} records read ({rate:,.0f}/s)", end="", file=sys.stderr, flush=True)

    def _ndjson(self, file_range: FileRange):
        source = _Source(file_range.path, file_range.start, file_range.end)
        lines = _Lines(file_range.first_line, file_range.start == 0)
        try:
            for block in source.blocks():
                yield from lines.feed(block)
            yield from lines.finish()
        except FileReadError:
            # What was read completely before the failure is ingested; the cut line is not a record.
            lines.pending = b""
            yield from lines.finish()
            raise
        finally:
            self.blank_lines.inc(lines.blank)

    def _typed(self, file_range: FileRange, rows_of):
        """Rows of a typed file (``rows_of(file)`` yields them) → chunks; a file that breaks off →
        what was read before, then the file's dead letter."""
        path = file_range.path
        try:
            f = FileSystems.open(path)
        except Exception as exc:  # noqa: BLE001 - missing, permission denied, ...
            raise FileReadError(FileFailure("unreadable_file", f"cannot open the file: {exc}", 0)) from None
        with f:
            positions, chunk, number = [], [], 0
            try:
                for number, row in enumerate(rows_of(f), 1):
                    positions.append(number)
                    chunk.append(row)
                    if len(chunk) == CHUNK_RECORDS:
                        yield positions, chunk
                        positions, chunk = [], []
            except Exception as exc:  # noqa: BLE001 - e.g. Avro read as Parquet: the file's dead letter
                offset = _tell(f)
                # Records were read and the file ran out: cut short (EOFError, or a sync marker cut).
                cut_short = isinstance(exc, EOFError) or number > 0 and offset >= _size(path) > 0
                failure = FileFailure(
                    "truncated_file" if cut_short else "corrupt_file",
                    f"{'the file ends early' if cut_short else f'not a readable {file_range.fmt} file'} after "
                    f"record {number - 1 if number else 0:,}: {type(exc).__name__}: {exc}", offset)
                if chunk:
                    yield positions, chunk
                raise FileReadError(failure) from None
            if chunk:
                yield positions, chunk

    def _avro(self, file_range: FileRange):
        import fastavro

        yield from self._typed(file_range, fastavro.reader)

    def _parquet(self, file_range: FileRange):
        import pyarrow.parquet as pq

        def rows(f):
            for batch in pq.ParquetFile(f).iter_batches(batch_size=CHUNK_RECORDS):
                yield from batch.to_pylist()

        yield from self._typed(file_range, rows)


def _tell(f) -> int:
    try:
        return f.tell()
    except Exception:  # noqa: BLE001 - a best-effort figure for the dead letter
        return 0


def _size(path: str) -> int:
    try:
        return FileSystems.match([path])[0].metadata_list[0].size_in_bytes
    except Exception:  # noqa: BLE001
        return 0


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

"""Event file writers: NDJSON, Avro and Parquet, each reporting where a record landed.

``write(record)`` returns ``(line, record_no)``: the 1-based physical line (blank lines counted)
and the 1-based record number (blank lines not counted). For Avro and Parquet both are the
record number.
"""

from __future__ import annotations

import pathlib

import orjson

from strata_core import contract as c
from strata_core import schemas
from strata.generator.bad_records import RawJson
from strata.generator.timestamps import rfc3339_utc

_FIELDS = tuple(f.name for f in c.CONTRACT_FIELDS)
_JSON_FIELDS = frozenset(f.name for f in c.CONTRACT_FIELDS if f.kind == "json")


def _verbatim(value):
    """:class:`RawJson` is JSON text: written as it is (e.g. an object with a repeated key)."""
    if isinstance(value, RawJson):
        return orjson.Fragment(str(value))
    raise TypeError(f"{type(value).__name__} is not JSON")


def ndjson_bytes(record: dict | bytes) -> bytes:
    """One NDJSON line (without its line break) as the NDJSON writer writes ``record``."""
    if type(record) is bytes:
        return record
    return orjson.dumps(record, default=_verbatim, option=orjson.OPT_PASSTHROUGH_SUBCLASS)


class NdjsonWriter:
    ext = "ndjson"
    typed = False

    def __init__(self, path: pathlib.Path):
        self.path = path
        self._f = open(path, "wb", buffering=1 << 20)
        self.line = 0
        self.records = 0

    def write(self, record: dict | bytes, crlf: bool = False) -> tuple[int, int]:
        data = ndjson_bytes(record)
        self._f.write(data + (b"\r\n" if crlf else b"\n"))
        self.line += 1
        self.records += 1
        return self.line, self.records

    def blank(self, crlf: bool = False) -> None:
        self._f.write(b"\r\n" if crlf else b"\n")
        self.line += 1

    def close(self) -> None:
        self._f.close()


def typed_record(obj: dict, epoch_ms_ok: bool) -> dict:
    """An event dict as the typed input schema carries it.

    ``properties``/``context`` become JSON text, amounts doubles; unknown top-level fields are
    dropped (the schemas have no place for them). Epoch-ms timestamps stay integers where the
    schema allows (Avro's ``["null", "string", "long"]``), else become RFC 3339 text.
    """
    rec = {}
    for name in _FIELDS:
        value = obj.get(name)
        if value is not None:
            if name in _JSON_FIELDS:
                value = str(value) if isinstance(value, RawJson) else orjson.dumps(value).decode()
            elif name == "amount":
                value = float(value)
            elif name == "event_timestamp" and type(value) is int and not epoch_ms_ok:
                value = rfc3339_utc(value)
        rec[name] = value
    return rec


class AvroWriter:
    ext = "avro"
    typed = True

    def __init__(self, path: pathlib.Path):
        import fastavro
        from fastavro.write import Writer

        self.path = path
        self._f = open(path, "wb")
        self._w = Writer(self._f, fastavro.parse_schema(schemas.avro_input_schema()), codec="deflate")
        self.records = 0

    def write(self, record: dict, crlf: bool = False) -> tuple[int, int]:
        self._w.write(typed_record(record, True))
        self.records += 1
        return self.records, self.records

    def close(self) -> None:
        self._w.flush()
        self._f.close()


class ParquetWriter:
    ext = "parquet"
    typed = True
    ROW_GROUP = 100_000

    def __init__(self, path: pathlib.Path):
        import pyarrow.parquet as pq

        self.path = path
        self._schema = schemas.arrow_input_schema()
        self._w = pq.ParquetWriter(path, self._schema, compression="zstd")
        self._rows: list[dict] = []
        self.records = 0

    def write(self, record: dict, crlf: bool = False) -> tuple[int, int]:
        self._rows.append(typed_record(record, False))
        self.records += 1
        if len(self._rows) >= self.ROW_GROUP:
            self._flush()
        return self.records, self.records

    def _flush(self) -> None:
        import pyarrow as pa

        self._w.write_table(pa.Table.from_pylist(self._rows, schema=self._schema))
        self._rows = []

    def close(self) -> None:
        if self._rows or not self.records:
            self._flush()
        self._w.close()


WRITERS = {"ndjson": NdjsonWriter, "avro": AvroWriter, "parquet": ParquetWriter}

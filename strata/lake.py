"""What the local lake holds per input source, and removing one source's rows from raw.

Every Parquet part of the lake comes from one input file (or one subscription): its rows
carry that input in ``source_file`` (events, users) or in ``attributes.source_file`` (dead
letters). :func:`parts_of` finds a source's parts by *content*, not by part names, and refuses
to remove a part that also holds another source's rows.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib

from strata import warehouse
from strata_core import duckdb_config, paths

#: How each raw table that holds input rows names the input a row came from. The other raw tables
#: hold none: ``event_counts_per_minute`` is an aggregate of the stream, ``dead_letter_replays``
#: a log of replays (its rows point at dead letters by ``row_key``).
SOURCE_COLUMN = {
    "events": "source_file",
    "users": "source_file",
    "dead_letters": "json_extract_string(attributes, '$.source_file')",
}


@dataclasses.dataclass(frozen=True)
class Part:
    table: str
    path: pathlib.Path
    rows: int


def sources() -> list[dict]:
    """Every input source in raw, with its row count per table, sorted by source."""
    found: dict[str, dict] = {}
    with warehouse.connect() as con:
        for table in SOURCE_COLUMN:
            rows = con.execute(f"select {SOURCE_COLUMN[table]}, count(*) "
                               f"from {duckdb_config.scan_sql(table)} group by 1").fetchall()
            for source, n in rows:
                entry = found.setdefault(source or "(unknown)", {"source": source or "(unknown)"})
                entry[table] = n
    return [dict({t: 0 for t in SOURCE_COLUMN}, **found[k]) for k in sorted(found)]


def spellings(source: str) -> list[str]:
    """The ways ``source`` may have been recorded: as given and, for a local path, absolute."""
    if "://" in source:
        return [source]
    return sorted({source, os.path.abspath(source)})


def parts_of(source: str) -> list[Part]:
    """The lake parts holding rows of ``source``. ``ValueError`` if a part mixes sources."""
    names = spellings(source)
    parts: list[Part] = []
    with warehouse.connect() as con:
        for table in SOURCE_COLUMN:
            rows = con.execute(
                f"select filename, count(*) filter (where list_contains($1, {SOURCE_COLUMN[table]})), "
                f"count(*) from {duckdb_config.scan_sql(table, filename=True)} group by filename "
                "order by filename", [names]).fetchall()
            for filename, mine, total in rows:
                if not mine:
                    continue
                if mine != total:
                    raise ValueError(f"{filename} holds {total - mine} row(s) of other sources besides "
                                     f"{mine} of {source}; refusing to remove it")
                parts.append(Part(table, pathlib.Path(filename), mine))
    return parts


def drop(parts: list[Part]) -> None:
    """Remove ``parts`` from the lake (each removal is atomic; readers see a part or none)."""
    lake = paths.lake_dir().resolve()
    for part in parts:
        if lake not in part.path.resolve().parents:
            raise ValueError(f"{part.path} is not inside the lake {lake}")
        part.path.unlink(missing_ok=True)

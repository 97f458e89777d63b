"""Replay dead letters through the current code, in the spirit of Snowplow's event recovery.

The lake is append-only, so nothing is rewritten (see ``contract.DEAD_LETTER_REPLAY_FIELDS``):

* a dead letter's *current* row is its highest ``replay_count`` row in ``raw.dead_letters``; it
  is pending unless ``raw.dead_letter_replays`` marks it ``accepted``;
* each pending one is rebuilt into a record of its original origin (file and line, or
  subscription and message, from its ``attributes``) and run through the ingest steps
  (``ParseEvents → ValidateEvents → EnrichEvents``, ``source="replay"``) with the current code.
  Accepted events get the ``row_key`` they would have had the first time;
* what now passes is written to ``raw.events`` (and ``raw.users``) and marked ``accepted``;
  what still fails gets a new dead-letter row with ``replay_count + 1`` and a ``failed`` mark,
  unless it fails exactly as its current row already says after a replay (nothing changed since):
  so running the same replay twice changes nothing the second time;
* part names come from the replay id, a hash of the replayed row keys: a replay that crashed
  half-way and is run again rewrites the same parts instead of adding copies.

Write-stage dead letters (``bigquery_insert_error``) hold a refused BigQuery row, not an input
record: they are replayed into BigQuery by the operator, not here. File-level dead letters
(``contract.FILE_ERROR_TYPES``: a truncated or unreadable file) hold no record either: fix or
re-fetch the file and ingest it again (its parts are replaced, so nothing is counted twice).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import time

import orjson
import pyarrow as pa

from strata_core import contract as c
from strata_core import schemas
from strata_core.lake import write_part

_LATEST_SQL_TEMPLATE = """
with ranked as (
    select *,
           row_number() over (partition by row_key order by replay_count desc, failed_at desc) as recency,
           min(failed_at) over (partition by row_key) as first_failed_at
    from raw.dead_letters
    where stage <> 'write' and error_type not in ({file_types})
)
select row_key, source, error_type, error_message, raw_payload, attributes, event_id, replay_count,
       first_failed_at
from ranked
where recency = 1
  and row_key not in (select row_key from raw.dead_letter_replays where outcome = 'accepted')
"""
_LATEST_SQL = _LATEST_SQL_TEMPLATE.format(file_types=", ".join("?" for _ in c.FILE_ERROR_TYPES))


@dataclasses.dataclass
class ReplayResult:
    replay_id: str | None
    candidates: int = 0
    accepted: int = 0
    still_failing: int = 0
    unchanged: int = 0
    by_error_type: dict = dataclasses.field(default_factory=dict)
    dry_run: bool = False

    def as_json(self) -> dict:
        return dataclasses.asdict(self)


def pending(error_types=None, since=None, until=None, event_ids=None) -> list[dict]:
    """The current rows of pending dead letters, filtered; bound parameters only."""
    from strata import warehouse

    sql, params = _LATEST_SQL, list(c.FILE_ERROR_TYPES)
    if error_types:
        sql += f" and error_type in ({', '.join('?' for _ in error_types)})"
        params += list(error_types)
    if since:
        sql += " and first_failed_at >= ?"
        params.append(since)
    if until:
        sql += " and first_failed_at < ?"
        params.append(until)
    if event_ids:
        sql += f" and event_id in ({', '.join('?' for _ in event_ids)})"
        params += list(event_ids)
    warehouse.init()
    columns, rows = warehouse.query(sql + " order by row_key", params)
    return [dict(zip(columns, row)) for row in rows]


def _origin_and_position(attributes: dict):
    from beam_pipelines.records import FileOrigin, Message, SubscriptionOrigin

    if "subscription" in attributes:
        message = Message(str(attributes["message_id"]), int(attributes.get("publish_time_us") or 0),
                          dict(attributes.get("attributes") or {}))
        return SubscriptionOrigin(attributes["subscription"]), message
    if "source_file" in attributes:
        return FileOrigin(attributes["source_file"], attributes.get("format") or "ndjson"), int(attributes["source_line"])
    raise ValueError(f"dead letter attributes {sorted(attributes)} name neither a file nor a message")


def _batches(dead_letters: list[dict], replay_id: str, received_us: int):
    """Pending dead letters → ``RecordBatch`` es, one per origin, records as they first arrived."""
    from beam_pipelines.records import RecordBatch

    groups: dict = {}
    for row in dead_letters:
        attributes = orjson.loads(row["attributes"]) if row["attributes"] else {}
        attributes.pop("stacktrace", None)
        origin, position = _origin_and_position(attributes)
        payload = bytes(row["raw_payload"])
        record = orjson.loads(payload) if origin.typed else payload
        positions, records = groups.setdefault(origin, ([], []))
        positions.append(position)
        records.append(record)
    return [RecordBatch(origin, f"replay-{replay_id}-{i:04d}", positions, records, received_us)
            for i, (origin, (positions, records)) in enumerate(groups.items())]


def _graph():
    from beam_pipelines.microbatch import MicroBatchGraph
    from beam_pipelines.stream import ingest_steps

    def build(batches):
        import apache_beam as beam

        steps = ingest_steps(batches, "replay")
        dead = steps["dead_letters"] | "CollectDeadLetters" >> beam.Flatten()
        return {"events": steps["events"], "users": steps["users"], "dead_letters": dead}

    return MicroBatchGraph(build)


def replay(error_types=None, since=None, until=None, event_ids=None, dry_run: bool = False) -> ReplayResult:
    """Replay the pending dead letters that match the filters; see the module doc."""
    from beam_pipelines.sinks.local import WriteRowsPartFn
    from beam_pipelines.transforms import DeadLetterBatch
    from strata_core import paths

    current = pending(error_types, since, until, event_ids)
    if not current:
        return ReplayResult(None, dry_run=dry_run)
    replay_id = hashlib.sha256("\n".join(r["row_key"] for r in current).encode()).hexdigest()[:16]
    result = ReplayResult(replay_id, candidates=len(current), dry_run=dry_run)
    by_key = {r["row_key"]: r for r in current}
    graph = _graph()
    try:
        out = graph.run(_batches(current, replay_id, time.time_ns() // 1000))
    finally:
        graph.close()
    replayed_at = dt.datetime.now(dt.timezone.utc)
    log, still_failing = [], []
    for part in out["events"]:
        for row_key, event_id in zip(part.rows.column("row_key").to_pylist(), part.rows.column("event_id").to_pylist()):
            log.append(_log_row(row_key, replayed_at, replay_id, "accepted", None,
                                by_key[row_key]["replay_count"] + 1, event_id))
    for batch in out["dead_letters"]:
        for row in batch.rows:
            before = by_key[row["row_key"]]
            if (before["source"] == "replay" and before["error_type"] == row["error_type"]
                    and before["error_message"] == row["error_message"]):
                result.unchanged += 1  # failed exactly like its last replay: nothing to record
                continue
            row["replay_count"] = before["replay_count"] + 1
            still_failing.append(row)
            result.by_error_type[row["error_type"]] = result.by_error_type.get(row["error_type"], 0) + 1
            log.append(_log_row(row["row_key"], replayed_at, replay_id, "failed", row["error_type"],
                                row["replay_count"], row.get("event_id")))
    result.accepted = sum(part.rows.num_rows for part in out["events"])
    result.still_failing = len(still_failing)
    if dry_run:
        return result
    writer = WriteRowsPartFn(str(paths.lake_dir()), durable=True)
    # Events (and users) first, then the dead letters, then the log: a crash before the log leaves
    # the dead letters pending, and the rerun rewrites the same parts.
    for part in [*out["events"], *out["users"]]:
        list(writer.process(part))
    if still_failing:
        list(writer.process(DeadLetterBatch(f"replay-{replay_id}", "replay", still_failing)))
    if log:
        write_part("dead_letter_replays", f"replay-{replay_id}",
                   pa.Table.from_pylist(log, schema=schemas.arrow_schema("dead_letter_replays")), durable=True)
    return result


def _log_row(row_key, replayed_at, replay_id, outcome, error_type, replay_count, event_id) -> dict:
    return {"row_key": row_key, "replayed_at": replayed_at, "replay_id": replay_id, "outcome": outcome,
            "error_type": error_type, "replay_count": replay_count, "event_id": event_id,
            "pipeline_version": c.PIPELINE_VERSION}

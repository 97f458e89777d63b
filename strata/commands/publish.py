"""``strata publish FILE... --topic T [--rate N]``: events from files → Pub/Sub, one message each.

For demos and backfills through the streaming path. NDJSON lines are published byte for byte
(blank lines skipped); Avro and Parquet records become the event's JSON, with the contract's
JSON fields (``properties``, ``context``), which those formats carry as JSON text, decoded back
to objects, and nulls dropped, so a message is exactly what a producer would have posted.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Iterator

import orjson


def register(sub) -> None:
    p = sub.add_parser("publish", help="publish NDJSON/Avro/Parquet events to a Pub/Sub topic",
                       description="Publish each event of the files as one Pub/Sub message (attributes: "
                       "event_type, source=publish, file), with a progress bar; prints what it published.")
    p.add_argument("files", nargs="+", metavar="FILE", help="input files (.jsonl/.ndjson/.json[.gz], .avro, .parquet)")
    p.add_argument("--topic", required=True, help="projects/PROJECT/topics/NAME")
    p.add_argument("--rate", type=float, default=None, help="at most N events per second (default: as fast as possible)")
    p.set_defaults(func=run)


def _json_fields() -> tuple[str, ...]:
    from strata_core import contract as c

    return tuple(f.name for f in c.CONTRACT_FIELDS if f.kind == "json")


def records(path: str) -> Iterator[bytes]:
    """The message data of every event in ``path``."""
    from apache_beam.io.filesystems import FileSystems

    from beam_pipelines.reading import detect_format

    fmt = detect_format(path)
    with FileSystems.open(path) as f:
        if fmt == "ndjson":
            for number, line in enumerate(f.read().split(b"\n"), 1):
                line = line.removeprefix(b"\xef\xbb\xbf") if number == 1 else line
                line = line.rstrip(b"\r")
                if line.strip():
                    yield line
            return
        if fmt == "avro":
            import fastavro

            rows = iter(fastavro.reader(f))
        else:
            import pyarrow.parquet as pq

            rows = (row for batch in pq.ParquetFile(f).iter_batches() for row in batch.to_pylist())
        json_fields = _json_fields()
        for row in rows:
            event = {k: v for k, v in row.items() if v is not None}
            for name in json_fields:
                if isinstance(event.get(name), str):
                    try:
                        event[name] = orjson.loads(event[name])
                    except orjson.JSONDecodeError:
                        pass  # left as text: the pipeline dead-letters it (invalid_properties)
            yield orjson.dumps(event, default=str)


def _event_type(data: bytes) -> str | None:
    try:
        value = orjson.loads(data).get("event_type")
    except (orjson.JSONDecodeError, AttributeError):
        return None
    return value if isinstance(value, str) and len(value.encode()) <= 1024 else None


def run(args) -> int:
    from strata_core import paths, pubsub

    if os.environ.get("PUBSUB_EMULATOR_HOST"):
        paths.use_offline_env()
    try:
        pubsub.check_topic(args.topic)
        if args.rate is not None and args.rate <= 0:
            raise ValueError(f"--rate {args.rate} must be a positive number of events per second")
        for path in args.files:
            if not path.startswith("gs://") and not os.path.isfile(path):
                raise ValueError(f"{path}: no such file")
    except ValueError as exc:
        print(f"strata publish: {exc}", file=sys.stderr)
        return 2
    from google.cloud.pubsub_v1.types import BatchSettings
    from tqdm import tqdm

    publisher = pubsub.publisher_client(batch_settings=BatchSettings(max_messages=500, max_latency=0.02))
    started = time.monotonic()
    published, failed, per_file = 0, 0, {}
    with tqdm(unit="event", desc="publishing", disable=not sys.stderr.isatty()) as bar:
        for path in args.files:
            futures = []
            for data in records(path):
                if args.rate:
                    wait = started + (published + len(futures)) / args.rate - time.monotonic()
                    if wait > 0:
                        time.sleep(wait)
                attributes = {"source": "publish", "file": os.path.basename(path)[:1024]}
                event_type = _event_type(data)
                if event_type:
                    attributes["event_type"] = event_type
                future = publisher.publish(args.topic, data, **attributes)
                future.add_done_callback(lambda _f: bar.update(1))
                futures.append(future)
            ok = 0
            for future in futures:
                try:
                    future.result(timeout=120)
                    ok += 1
                except Exception as exc:  # noqa: BLE001 - reported, and the exit status says so
                    failed += 1
                    if failed <= 5:
                        print(f"strata publish: a message from {path} was not published: {exc}", file=sys.stderr)
            per_file[path] = ok
            published += ok
    seconds = time.monotonic() - started
    for path, count in per_file.items():
        print(f"{count:>10,}  {path}")
    print(f"published {published:,} events to {args.topic} in {seconds:.1f} s "
          f"({published / max(seconds, 1e-9):,.0f}/s)" + (f"; {failed:,} FAILED" if failed else ""))
    return 1 if failed else 0

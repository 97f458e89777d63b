"""The batch ingest job: files (local or gs://; NDJSON, Avro, Parquet) → raw tables + dead letters.

``build_pipeline`` only wires the composite steps together; the steps live in ``reading``,
``transforms`` and ``sinks``. ``run`` executes it and returns a :class:`IngestSummary` read from
the job's Beam counters, so the same figures come back from every runner.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time

import apache_beam as beam
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.options.pipeline_options import DirectOptions, PipelineOptions, StandardOptions

from beam_pipelines.options import BatchIngestOptions, validate_batch_options
from beam_pipelines.reading import ReadRecordChunks
from beam_pipelines.transforms import EnrichEvents, EnrichUsers, ParseEvents, ValidateEvents, ValidateUsers

log = logging.getLogger(__name__)


def build_pipeline(p: beam.Pipeline, opts: BatchIngestOptions, *, progress: bool = False):
    """Wire the batch job onto ``p``. Step labels are stable: Dataflow ``--update`` matches on them."""
    events = p | "ReadEvents" >> ReadRecordChunks(opts.input, "events", opts.input_format, progress=progress)
    parsed = events | "ParseEvents" >> ParseEvents("batch")
    valid = parsed.parsed | "ValidateEvents" >> ValidateEvents("batch")
    enriched = valid.valid | "EnrichEvents" >> EnrichEvents("batch")
    dead = [parsed.dead_letters, valid.dead_letters, enriched.dead_letters]
    users = [enriched.users]
    if opts.users_input:
        user_chunks = p | "ReadUsers" >> ReadRecordChunks(opts.users_input, "users", "ndjson")
        user_parsed = user_chunks | "ParseUsers" >> ParseEvents("batch", kind="users")
        user_valid = user_parsed.parsed | "ValidateUsers" >> ValidateUsers("batch")
        users.append(user_valid.valid | "EnrichUsers" >> EnrichUsers("batch"))
        dead += [user_parsed.dead_letters, user_valid.dead_letters]
    if opts.sink == "local":
        from beam_pipelines.sinks.local import WriteRawLocal

        outputs = {"Events": enriched.events}
        outputs.update({f"Users{i}": pc for i, pc in enumerate(users)})
        outputs.update({f"DeadLetters{i}": pc for i, pc in enumerate(dead)})
        return outputs | "WriteRaw" >> WriteRawLocal(f"{opts.strata_home}/lake")
    tables = {
        "events": enriched.events,
        "users": tuple(users) | "CollectUsers" >> beam.Flatten(),
        "dead_letters": tuple(dead) | "CollectDeadLetters" >> beam.Flatten(),
    }
    from apache_beam.options.pipeline_options import GoogleCloudOptions

    from beam_pipelines.bigquery.clients import LoopbackClient
    from beam_pipelines.sinks.bigquery import WriteRawBigQuery

    client = LoopbackClient(opts.bq_endpoint, opts.bq_project) if opts.bq_endpoint else None
    return tables | "WriteRaw" >> WriteRawBigQuery(
        opts.bq_project, opts.bq_dataset, client, method=opts.bq_write_method,
        temp_location=opts.view_as(GoogleCloudOptions).temp_location)


def prepare_sink(opts: BatchIngestOptions) -> None:
    """Create what the sink needs before the job starts (BigQuery: dataset and raw tables)."""
    if opts.sink != "bigquery":
        return
    from beam_pipelines.bigquery.clients import make_client
    from beam_pipelines.bigquery.tables import ensure_tables

    ensure_tables(make_client(opts.bq_project, opts.bq_endpoint), opts.bq_project, opts.bq_dataset)


@dataclasses.dataclass
class IngestSummary:
    read: int
    blank_lines: int
    accepted: int
    dead_lettered: int
    by_error_type: dict[str, int]
    users_read: int
    users_accepted: int
    users_dead_lettered: int
    seconds: float
    #: Input files that could not be read to their end (one file-level dead letter each):
    #: ``file``, ``error_type``, ``offset`` (bytes read), ``reason``.
    failed_files: list[dict] = dataclasses.field(default_factory=list)
    #: Local worker processes the job ran on.
    workers: int = 1

    @property
    def events_per_s(self) -> float:
        return self.read / self.seconds if self.seconds else 0.0

    @property
    def balanced(self) -> bool:
        """The ingest invariant: every non-blank input record is accepted or dead-lettered."""
        return self.read == self.accepted + self.dead_lettered

    def as_json(self) -> dict:
        return {"read": self.read, "accepted": self.accepted, "dead_lettered": self.dead_lettered,
                "by_error_type": dict(sorted(self.by_error_type.items())),
                "events_per_s": round(self.events_per_s, 1), "blank_lines": self.blank_lines,
                "users": {"read": self.users_read, "accepted": self.users_accepted,
                          "dead_lettered": self.users_dead_lettered},
                "seconds": round(self.seconds, 3), "balanced": self.balanced,
                "failed_files": self.failed_files, "workers": self.workers}


def summarize(result, seconds: float) -> IngestSummary:
    totals: dict[str, int] = {}
    metrics = result.metrics().query(MetricsFilter().with_namespace("strata"))
    for counter in metrics["counters"]:
        value = counter.committed if counter.committed is not None else counter.attempted
        totals[counter.key.metric.name] = totals.get(counter.key.metric.name, 0) + int(value or 0)
    failed = set()
    for string_set in metrics.get("string_sets", []):
        if string_set.key.metric.name.endswith(".failed_files"):
            failed |= set(string_set.committed if string_set.committed is not None else string_set.attempted or ())

    def dead(kind: str) -> dict[str, int]:
        prefix = f"{kind}.dead_letter."
        return {k[len(prefix):]: v for k, v in totals.items() if k.startswith(prefix) and v}

    by_error = dead("events")
    refused = totals.get("bigquery_refused", 0)
    if refused:
        by_error["bigquery_insert_error"] = by_error.get("bigquery_insert_error", 0) + refused
    accepted = totals.get("events_written", totals.get("events_enriched", 0) - refused)
    users_dead = dead("users")
    return IngestSummary(
        read=totals.get("events_read", 0), blank_lines=totals.get("events_blank_lines", 0),
        accepted=accepted, dead_lettered=sum(by_error.values()), by_error_type=by_error,
        users_read=totals.get("users_read", 0), users_accepted=totals.get("users_valid", 0),
        users_dead_lettered=sum(users_dead.values()), seconds=seconds,
        failed_files=sorted((json.loads(f) for f in failed), key=lambda f: f["file"]))


def make_runner(runner: str):
    """``local`` → Beam's in-process FnApiRunner: nothing is downloaded (the DirectRunner of Beam
    2.77 first tries to fetch the Prism binary from GitHub). Anything else is passed to Beam."""
    if runner in ("local", "FnApiRunner"):
        from apache_beam.runners.portability.fn_api_runner import FnApiRunner

        return FnApiRunner()
    if runner == "DirectRunner":
        raise ValueError("--runner DirectRunner would try to download Prism; use --runner local")
    return runner


#: Input bytes per local worker process. A worker process costs about 3 s of a core before its
#: first record (a Python, and Beam's import), and the job costs about 12 µs of a core per event
#: (about 400 bytes): a second process pays once half the work exceeds its start-up, about 500k
#: events or 200 MB. Two processes get 256 MiB or more (measured on an idle 2-core machine: 1M
#: events, 399 MB, 13.8 s against 15.2 s in one). See BENCHMARKS.md (``--workers-sweep``).
BYTES_PER_WORKER = 128 * 1024 * 1024


def busy_cores(sample_s: float = 0.25) -> float:
    """Cores busy right now: ``/proc/stat`` sampled over ``sample_s``; elsewhere the 1-minute load
    average. The load average lags by a minute, so a job started right after other work (the
    benchmark's generator, a test) would read a free machine as busy and stay in one process."""
    def sample() -> tuple[int, int]:
        with open("/proc/stat") as f:
            ticks = [int(t) for t in f.readline().split()[1:]]
        return ticks[3] + ticks[4], sum(ticks[:8])  # idle + iowait, all but guest time

    try:
        idle0, total0 = sample()
        time.sleep(sample_s)
        idle1, total1 = sample()
    except (OSError, ValueError, IndexError):
        return os.getloadavg()[0]
    elapsed = total1 - total0
    return (os.cpu_count() or 1) * (1 - (idle1 - idle0) / elapsed) if elapsed > 0 else os.getloadavg()[0]


def local_workers(patterns: list[str], cpus: int | None = None, busy: float | None = None) -> int:
    """Worker processes for the local runner: one per ``BYTES_PER_WORKER`` of input, at most one
    per idle core.

    Each worker process starts a Python and imports Beam again (1-2 s of a core), which pays only
    when there is a core to run it on: on a machine already busy (``busy``: cores in use, from
    :func:`busy_cores`), extra processes only take turns and the job gets slower, so it stays in one.
    """
    from beam_pipelines.reading import input_bytes

    by_size = input_bytes(patterns) // BYTES_PER_WORKER
    if by_size < 2:
        return 1  # no need to look at the machine
    cpus = cpus or os.cpu_count() or 1
    busy = busy_cores() if busy is None else busy
    idle = max(1, int(cpus - busy + 0.5))
    return max(1, min(idle, by_size))


def run(argv: list[str], *, runner: str = "local", workers: int | None = None,
        progress: bool = False) -> IngestSummary:
    """Run the batch job with Beam-style ``argv`` (``--input ... --sink ...``); return its summary.

    ``workers``: local worker processes; ``None`` picks them from the input's size
    (:func:`local_workers`).
    """
    options = PipelineOptions(argv)
    opts = options.view_as(BatchIngestOptions)
    validate_batch_options(opts)
    if workers is None:
        workers = local_workers(opts.input) if runner in ("local", "FnApiRunner") else 1
    if workers > 1:
        options.view_as(DirectOptions).direct_num_workers = workers
        options.view_as(DirectOptions).direct_running_mode = "multi_processing"
    if runner != "local":
        options.view_as(StandardOptions).runner = runner
    started = time.perf_counter()
    prepare_sink(opts)
    p = beam.Pipeline(runner=make_runner(runner), options=options)
    build_pipeline(p, opts, progress=progress)
    result = p.run()
    result.wait_until_finish()
    return dataclasses.replace(summarize(result, time.perf_counter() - started), workers=workers)


def main(argv: list[str] | None = None) -> None:
    """Flex Template / ``python -m`` entry point: Beam-style flags, runner from ``--runner``."""
    import sys

    logging.getLogger().setLevel(logging.INFO)
    argv = list(sys.argv[1:] if argv is None else argv)
    if not any(a.startswith("--sink") for a in argv):
        argv.append("--sink=bigquery")  # the template's only sink; local runs use `strata ingest batch`
    runner = PipelineOptions(argv).view_as(StandardOptions).runner or "DataflowRunner"
    summary = run(argv, runner=runner)
    log.info("ingest summary: %s", summary.as_json())


if __name__ == "__main__":  # pragma: no cover
    main()

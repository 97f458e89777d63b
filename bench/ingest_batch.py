"""Benchmark the batch ingest: Beam (1 and 2 processes) vs a plain-Python baseline vs DuckDB.

    .venv/bin/python bench/ingest_batch.py [--events 1000000] [--repeat 1] [--json]

All four contenders ingest the same generated NDJSON (about 2 % bad records, 1 % duplicates):

* ``plain_python`` – the baseline: a plain loop over the same decode/validate/enrich functions
  and the same Parquet writer, no Beam. Measured in the same run, so ratios are meaningful on a
  noisy machine.
* ``beam_local``   – ``strata ingest batch`` on the default local runner (in-process FnApiRunner).
* ``beam_2proc``   – the same job on two worker processes (``--workers 2``).
* ``duckdb_ceiling`` – DuckDB's own ``read_json`` of the same files into Parquet: no validation,
  no dead letters, C++ throughout. An upper bound, not a competitor.

Each contender writes into its own fresh ``$STRATA_HOME``. Modules are imported before any clock
starts, so the figures are events per second of steady work (Beam's own job start-up, worker
processes included, is inside the measurement). Record them in BENCHMARKS.md as ratios against
``plain_python``.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import pathlib
import shutil
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from strata_core import paths  # noqa: E402

paths.use_offline_env()

# Import everything any contender needs before timing, so no contender pays for another's imports.
import apache_beam  # noqa: E402,F401
import duckdb  # noqa: E402,F401
import pyarrow.parquet  # noqa: E402,F401

from beam_pipelines import batch, reading, transforms  # noqa: E402,F401
from beam_pipelines.sinks import local  # noqa: E402,F401
from strata import warehouse  # noqa: E402,F401


def generated(events: int) -> tuple[pathlib.Path, dict]:
    out = ROOT / "bench" / "out" / f"events-{events}"
    truth_file = out / "ground_truth.json"
    if not truth_file.exists():
        from strata import cli

        shutil.rmtree(out, ignore_errors=True)
        status = cli.main(["generate", "--out", str(out), "--users", str(max(events // 50, 100)),
                           "--days", "30", "--events", str(events), "--seed", "1", "--files", "4"])
        if status:
            raise SystemExit(status)
    return out, json.loads(truth_file.read_text())


def plain_python(files: list[pathlib.Path], home: pathlib.Path) -> int:
    """Same functions as the Beam steps, called from a plain loop; returns records read."""
    from beam_pipelines import reading, transforms
    from beam_pipelines.sinks.local import WriteRowsPartFn
    from strata import warehouse

    warehouse.init(home / "warehouse.duckdb", home / "lake")
    reader, parse, validate, enrich = (reading.ReadRangeFn(), transforms.ParseFn(), transforms.ValidateFn(),
                                       transforms.EnrichFn())
    write = WriteRowsPartFn(str(home / "lake"))
    read = 0
    for path in files:
        for file_range in reading.PlanRangesFn().process(str(path)):
            for chunk in reader.process(file_range):
                read += len(chunk.records)
                with transforms.no_gc():  # as the Beam steps do, each around its own work
                    parsed, dead_p = parse.parse(chunk)
                    valid, dead_v = validate.validate(parsed)
                    del parsed
                    outputs = [getattr(out, "value", out) for out in enrich.enrich(valid)]
                    del valid
                outputs += [transforms.DeadLetterBatch(chunk.batch_id, stage, dead)
                            for stage, dead in (("parse", dead_p), ("validate", dead_v)) if dead]
                for output in outputs:
                    list(write.process(output))
    return read


def beam(files_glob: str, home: pathlib.Path, workers: int) -> int:
    os.environ["STRATA_HOME"] = str(home)
    from beam_pipelines import batch
    from strata import warehouse
    from strata.commands.ingest import quiet_beam_logs

    quiet_beam_logs()
    warehouse.init()
    summary = batch.run([f"--input={files_glob}", f"--strata_home={home}"], workers=workers)
    assert summary.balanced, summary.as_json()
    return summary.read


def duckdb_ceiling(files: list[pathlib.Path], home: pathlib.Path) -> int:
    import duckdb

    home.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    paths = [str(p) for p in files]
    con.execute(
        "copy (select * from read_json(?, format = 'newline_delimited', ignore_errors = true, "
        "maximum_object_size = 2097152, union_by_name = true)) to ? (format parquet)",
        [paths, str(home / "events.parquet")])
    return sum(1 for p in files for line in open(p, "rb") if line.strip())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=1, help="runs per contender; the best is kept")
    parser.add_argument("--only", nargs="+", choices=("plain_python", "beam_local", "beam_2proc", "duckdb_ceiling"))
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    out, truth = generated(args.events)
    files = sorted(out.glob("events-*"))
    glob = str(out / "events-*")
    contenders = {
        "plain_python": lambda home: plain_python(files, home),
        "beam_local": lambda home: beam(glob, home, 1),
        "beam_2proc": lambda home: beam(glob, home, 2),
        "duckdb_ceiling": lambda home: duckdb_ceiling(files, home),
    }
    results = {}
    for name, fn in contenders.items():
        if args.only and name not in args.only:
            continue
        best = None
        for _ in range(args.repeat):
            home = pathlib.Path(tempfile.mkdtemp(prefix=f"strata-bench-{name}-"))
            try:
                started = time.perf_counter()
                read = fn(home)
                seconds = time.perf_counter() - started
            finally:
                shutil.rmtree(home, ignore_errors=True)
            assert read == truth["input_records"], (name, read, truth["input_records"])
            if best is None or seconds < best:
                best = seconds
        results[name] = {"records": truth["input_records"], "seconds": round(best, 2),
                         "events_per_s": round(truth["input_records"] / best)}
        print(f"{name:<16}{results[name]['events_per_s']:>12,} events/s  ({best:.2f} s)", file=sys.stderr, flush=True)

    base = results.get("plain_python", {}).get("events_per_s")
    print(f"\n{truth['input_records']:,} records, {len(files)} files, cores: {os.cpu_count()}")
    print(f"{'contender':<16}{'events/s':>12}{'seconds':>10}{'vs plain':>10}")
    for name, r in results.items():
        ratio = f"{r['events_per_s'] / base:.2f}x" if base else "-"
        print(f"{name:<16}{r['events_per_s']:>12,}{r['seconds']:>10.2f}{ratio:>10}")
    if args.json:
        print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())

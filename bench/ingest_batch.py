"""Benchmark the batch ingest: the whole ``strata ingest batch`` command against DuckDB's ceiling.

    .venv/bin/python bench/ingest_batch.py [--events 1000000] [--repeat 1] [--json]
    .venv/bin/python bench/ingest_batch.py --events 200000 --workers-sweep     # where 2 processes pay

Every contender ingests the same generated NDJSON (about 2 % bad records of every kind, 2 % with
unknown fields, 1 % duplicates) into its own fresh ``$STRATA_HOME``, and runs as its own process,
timed from launch to exit: the *whole* command, interpreter start and imports included.

* ``default``        – ``strata ingest batch --input ...`` with default flags (``--workers`` chosen
  from the input's size: both cores for large inputs);
* ``one_process``    – the same with ``--workers 1`` (Beam's in-process FnApiRunner);
* ``two_processes``  – the same with ``--workers 2``;
* ``per_record``     – ``--workers 1`` with ``STRATA_FAST_PATH=off``: every record through the
  rule-by-rule validator, as before the compiled path (the second baseline);
* ``duckdb_ceiling`` – DuckDB's own ``read_json`` of the same files into one Parquet file: no
  validation, no dead letters, C++ on both cores. An upper bound, not a competitor.

Then, in this process with everything imported, the same steps as plain function calls on the
same files give the cost of each stage in µs per event (CPU time, so that the shared machine's
load inflates it less than wall time), and the Beam local runner's own cost is the in-process job
minus that plain loop. Record the ratios in BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
PYTHON = sys.executable

DUCKDB_SCRIPT = """
import sys, duckdb
files, out = sys.argv[1:-1], sys.argv[-1]
con = duckdb.connect()
con.execute("copy (select * from read_json(?, format = 'newline_delimited', ignore_errors = true, "
            "maximum_object_size = 2097152, union_by_name = true)) to ? (format parquet)", [files, out])
"""


def generated(events: int) -> tuple[pathlib.Path, dict]:
    out = ROOT / "bench" / "out" / f"events-{events}"
    truth_file = out / "ground_truth.json"
    if not truth_file.exists():
        shutil.rmtree(out, ignore_errors=True)
        status = subprocess.call([PYTHON, "-m", "strata", "generate", "--out", str(out), "--users",
                                  str(max(events // 50, 100)), "--days", "30", "--events", str(events),
                                  "--seed", "1", "--files", "4"], cwd=ROOT)
        if status:
            raise SystemExit(status)
    return out, json.loads(truth_file.read_text())


def command(args: list[str], env: dict | None = None) -> tuple[float, dict]:
    """Run one contender as its own process; (wall seconds, its JSON summary or {})."""
    home = pathlib.Path(tempfile.mkdtemp(prefix="strata-bench-"))
    environment = {**os.environ, "STRATA_HOME": str(home), **(env or {})}
    environment["PYTHONPATH"] = str(ROOT)
    try:
        started = time.perf_counter()
        done = subprocess.run(args, cwd=ROOT, env=environment, capture_output=True, text=True)
        seconds = time.perf_counter() - started
    finally:
        shutil.rmtree(home, ignore_errors=True)
    if done.returncode:
        raise SystemExit(f"{' '.join(args[:4])} ... failed ({done.returncode}):\n{done.stderr[-3000:]}")
    lines = done.stdout.strip().splitlines()
    return seconds, json.loads(lines[-1]) if lines and lines[-1].startswith("{") else {}


def ingest(glob: str, *flags: str, env: dict | None = None):
    return lambda: command([PYTHON, "-m", "strata", "ingest", "batch", "--input", glob, "--json", *flags], env)


def duckdb(files: list[pathlib.Path]):
    def run():
        out = pathlib.Path(tempfile.mkdtemp(prefix="strata-bench-duckdb-"))
        try:
            return command([PYTHON, "-c", DUCKDB_SCRIPT, *map(str, files), str(out / "events.parquet")])
        finally:
            shutil.rmtree(out, ignore_errors=True)
    return run


# ---- stage costs, in this process ----------------------------------------------------------------

def stage_costs(files: list[pathlib.Path]) -> dict:
    """The steps as plain calls: CPU µs per event per stage, and the loop's wall seconds."""
    import numpy as np

    from beam_pipelines import fastpath, reading, transforms
    from beam_pipelines.sinks.local import WriteRowsPartFn

    home = pathlib.Path(tempfile.mkdtemp(prefix="strata-bench-stages-"))
    cpu = dict.fromkeys(("read", "decode", "columns", "validate", "write"), 0.0)
    clock = time.process_time
    parse, validate, enrich = transforms.ParseFn(), transforms.ValidateFn(), transforms.EnrichFn()
    writer = WriteRowsPartFn(str(home / "lake"))
    events = 0
    started = time.perf_counter()
    try:
        with transforms.no_gc():
            for path in files:
                for file_range in reading.PlanRangesFn().process(str(path)):
                    t = clock()
                    batches = list(reading.ReadRangeFn().process(file_range))
                    cpu["read"] += clock() - t
                    for batch in batches:
                        events += len(batch.records)
                        # decode: the compiled decoder, and the validator's decode of what it refused
                        t = clock()
                        decoded_batch = fastpath.decode(batch.records)
                        cpu["decode"] += clock() - t
                        t = clock()
                        decoded = fastpath.columns(decoded_batch)
                        cpu["columns"] += clock() - t
                        t = clock()
                        taken = np.asarray(decoded_batch.taken, np.int64)
                        suspect = fastpath.parse_suspects(batch.records, taken, decoded)
                        fast = transforms.FastRecords(taken[~suspect], transforms._pick(batch.positions, taken[~suspect]),
                                                      decoded.filter(~suspect))
                        cpu["validate"] += clock() - t
                        t = clock()
                        parsed, dead_p = parse._parse_slowly(batch, sorted(decoded_batch.refused
                                                                           + taken[suspect].tolist()))
                        cpu["decode"] += clock() - t
                        t = clock()
                        valid, dead_v = validate.validate(parsed._replace(fast=fast))
                        cpu["validate"] += clock() - t
                        t = clock()  # the row builder (EnrichFn) counts as "columns"
                        outputs = [getattr(o, "value", o) for o in enrich.enrich(valid)]
                        cpu["columns"] += clock() - t
                        outputs += [transforms.DeadLetterBatch(batch.batch_id, step, rows)
                                    for step, rows in (("parse", dead_p), ("validate", dead_v)) if rows]
                        t = clock()
                        for output in outputs:
                            list(writer.process(output))
                        cpu["write"] += clock() - t
    finally:
        shutil.rmtree(home, ignore_errors=True)
    return {"events": events, "wall_s": round(time.perf_counter() - started, 2),
            "cpu_us_per_event": {k: round(v / events * 1e6, 2) for k, v in cpu.items()}}


def in_process_job(glob: str) -> float:
    """The Beam job (one process) in this process, imports done: wall seconds."""
    from beam_pipelines import batch
    from strata import warehouse
    from strata.commands.ingest import quiet_beam_logs

    home = pathlib.Path(tempfile.mkdtemp(prefix="strata-bench-inproc-"))
    os.environ["STRATA_HOME"] = str(home)
    try:
        quiet_beam_logs()
        warehouse.init()
        started = time.perf_counter()
        summary = batch.run([f"--input={glob}", f"--strata_home={home}"], workers=1)
        seconds = time.perf_counter() - started
        assert summary.balanced
    finally:
        shutil.rmtree(home, ignore_errors=True)
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=1, help="rounds of all contenders; each one's best is kept")
    parser.add_argument("--only", nargs="+", choices=("default", "one_process", "two_processes", "per_record",
                                                      "duckdb_ceiling", "stages"))
    parser.add_argument("--workers-sweep", action="store_true",
                        help="only compare --workers 1 and 2 (where two processes start to pay)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    from strata_core import paths

    paths.use_offline_env()
    out, truth = generated(args.events)
    files = sorted(out.glob("events-*"))
    glob = str(out / "events-*")
    contenders = {
        "default": ingest(glob),
        "one_process": ingest(glob, "--workers", "1"),
        "two_processes": ingest(glob, "--workers", "2"),
        "per_record": ingest(glob, "--workers", "1", env={"STRATA_FAST_PATH": "off"}),
        "duckdb_ceiling": duckdb(files),
    }
    if args.workers_sweep:
        contenders = {k: contenders[k] for k in ("one_process", "two_processes")}
    elif args.only:
        contenders = {k: v for k, v in contenders.items() if k in args.only}
    n = truth["input_records"]
    best: dict[str, float] = {}
    for _ in range(args.repeat):  # rounds, so that a burst of load on the machine hits all alike
        for name, run in contenders.items():
            seconds, summary = run()
            if summary:
                assert summary["read"] == n and summary["balanced"], (name, summary)
                assert summary["accepted"] == truth["accepted"], (name, summary["accepted"], truth["accepted"])
            best[name] = min(best.get(name, seconds), seconds)
            workers = f", {summary['workers']} worker(s)" if summary else ""
            print(f"{name:<16}{n / seconds:>12,.0f} events/s  ({seconds:.2f} s{workers})", file=sys.stderr, flush=True)

    results = {"records": n, "files": len(files), "input_mb": round(sum(f.stat().st_size for f in files) / 1e6),
               "cores": os.cpu_count(),
               "contenders": {k: {"seconds": round(s, 2), "events_per_s": round(n / s)} for k, s in best.items()}}
    ceiling = best.get("duckdb_ceiling")
    baseline = best.get("per_record")
    print(f"\n{n:,} records, {len(files)} files ({results['input_mb']} MB), cores: {os.cpu_count()}")
    print(f"{'contender':<16}{'events/s':>12}{'seconds':>10}{'vs ceiling':>12}{'vs per-record':>15}")
    for name, seconds in best.items():
        vs_ceiling = f"{ceiling / seconds:.2f}x" if ceiling else "-"
        vs_baseline = f"{baseline / seconds:.2f}x" if baseline else "-"
        print(f"{name:<16}{n / seconds:>12,.0f}{seconds:>10.2f}{vs_ceiling:>12}{vs_baseline:>15}")

    if not args.workers_sweep and (not args.only or "stages" in args.only):
        stages = stage_costs(files)
        stages["beam_job_in_process_s"] = round(in_process_job(glob), 2)
        results["stages"] = stages
        total = sum(stages["cpu_us_per_event"].values())
        print(f"\nper stage, CPU µs per event (plain calls, {stages['wall_s']} s wall for the loop):")
        for stage, us in stages["cpu_us_per_event"].items():
            print(f"  {stage:<10}{us:>8.2f}")
        print(f"  {'total':<10}{total:>8.2f}   (= {1e6 / total:,.0f} events/s per core)")
        print(f"Beam job in this process, one worker: {stages['beam_job_in_process_s']} s "
              f"(the local runner adds {stages['beam_job_in_process_s'] - stages['wall_s']:+.2f} s to the plain loop)")
        if "one_process" in best:
            print(f"whole one-process command: {best['one_process']:.2f} s (start-up and imports: "
                  f"{best['one_process'] - stages['beam_job_in_process_s']:+.2f} s)")
    if args.json:
        print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark the streaming path: collector → Pub/Sub emulator → `strata ingest stream` → raw.

    .venv/bin/python bench/stream.py [--rates 1000,2000,4000] [--seconds 60] [--batch 20] [--json]
    .venv/bin/python bench/stream.py --candidates        # the local design's runner candidates
    .venv/bin/python bench/stream.py --ceilings          # collector alone (wrk), pipeline alone

End to end (the default), per offered rate, each on a fresh topic and ``$STRATA_HOME``:

* the load generator (this process, asyncio, open loop) POSTs ``{"batch": [...]}`` of
  ``--batch`` events on keep-alive connections at the offered rate for ``--seconds``; it records
  each event's 202 time, and measures its own CPU time to show it is not the bottleneck;
* a watcher thread lists the lake every 20 ms and reads the ``event_id`` s of each new part:
  a part is queryable the moment it is renamed into place, so *first seen* is when a row
  became queryable in raw (within 20 ms);
* latency = first seen − 202; sustained rate = events queryable per second over the run;
  loss = 202'd events never seen (after draining until 30 s pass without a new row); duplicates downstream = rows of
  ``staging.stg_events`` beyond one per event_id after ``strata transform``.

``--candidates`` times one micro-batch through the same graph (ParseEvents → ValidateEvents →
EnrichEvents → WriteRawLocal) on Beam's FnApiRunner (a bounded pipeline per micro-batch) and on
``MicroBatchGraph`` (the same DoFns, in process), at several batch sizes.
``--ceilings``: the collector + emulator alone, driven by ``wrk`` (a C load generator), and
the pipeline alone draining a pre-published backlog.

The machine is shared: compare figures of the same run. Record them in BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from strata_core import paths  # noqa: E402

paths.use_offline_env()

import orjson  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

from strata import pubsub_local  # noqa: E402
from strata_core import writekeys  # noqa: E402

OUT = ROOT / "bench" / "out"


def event(run: str, i: int, now: str) -> dict:
    kind = ("purchase", "signup", "error", "refund")[i % 4]
    e = {"event_id": f"{run}-{i}", "event_type": kind, "user_id": f"u-{i % 5000}", "event_timestamp": now,
         "platform": "web", "properties": {"order_id": f"o-{i}", "code": "E1"} if kind != "signup" else {"plan": "pro"}}
    if kind in ("purchase", "refund"):
        e.update(amount=19.99, currency="EUR")
    return e


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


# ---- processes ------------------------------------------------------------------------------------

@contextlib.contextmanager
def process(args: list[str], env: dict, ready: str | None = None, log: pathlib.Path | None = None):
    out = subprocess.PIPE if ready else open(log or os.devnull, "wb")
    proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT if ready else out, env=env, cwd=ROOT)
    try:
        line = ""
        if ready:
            while ready not in line:
                line = proc.stdout.readline().decode()
                if not line and proc.poll() is not None:
                    raise RuntimeError(f"{args[:4]} exited: {proc.returncode}")
        yield proc, line
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def cpu_seconds(pid: int) -> float:
    import psutil

    try:
        p = psutil.Process(pid)
        total = sum(p.cpu_times()[:2])
        for child in p.children(recursive=True):
            with contextlib.suppress(psutil.Error):
                total += sum(child.cpu_times()[:2])
        return total
    except psutil.Error:
        return float("nan")


# ---- the load generator -------------------------------------------------------------------------

async def _client(host: str, port: int, key: str, schedule, results: list, t0: float):
    reader, writer = await asyncio.open_connection(host, port)
    head = (f"POST /v1/events HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {key}\r\n"
            "Content-Type: application/json\r\nContent-Length: ").encode()
    loop = asyncio.get_running_loop()
    try:
        for due, ids, body in schedule:
            wait = t0 + due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            writer.write(head + str(len(body)).encode() + b"\r\n\r\n" + body)
            headers = await reader.readuntil(b"\r\n\r\n")
            length = int(next(h.split(b":")[1] for h in headers.split(b"\r\n") if h.lower().startswith(b"content-length")))
            await reader.readexactly(length)
            results.append((time.time(), int(headers[9:12]), ids))
    finally:
        writer.close()


def offer_load(url: str, key: str, run: str, rate: int, seconds: float, batch: int, connections: int):
    """Open-loop load: ``rate`` events/s in requests of ``batch`` events. Returns (results, cpu_s)."""
    from datetime import datetime, timezone

    host, port = url.removeprefix("http://").split(":")
    requests = int(rate * seconds / batch)
    interval = batch / rate
    now = datetime.now(timezone.utc).isoformat()
    bodies = []
    for r in range(requests):
        events = [event(run, r * batch + j, now) for j in range(batch)]
        bodies.append((r * interval, [e["event_id"] for e in events], orjson.dumps({"batch": events})))
    schedules = [bodies[i::connections] for i in range(connections)]
    results: list = []
    cpu0 = time.process_time()

    async def main():
        t0 = asyncio.get_running_loop().time()
        await asyncio.gather(*(_client(host, int(port), key, s, results, t0) for s in schedules))

    asyncio.run(main())
    return results, time.process_time() - cpu0


# ---- the watcher ----------------------------------------------------------------------------------

class Watcher(threading.Thread):
    """First time each event_id is queryable in raw.events (new parts, polled every 20 ms)."""

    def __init__(self, lake: pathlib.Path):
        super().__init__(daemon=True)
        self.root = lake / "raw" / "events"
        self.seen: dict[str, float] = {}
        self.received: dict[str, float] = {}  # the micro-batch's received_at (it closed then)
        self.rows = 0
        self.files: set[str] = set()
        self.stop = threading.Event()

    def run(self):
        while not self.stop.is_set():
            now = time.time()
            for path in self.root.glob("event_date=*/*.parquet"):
                name = str(path)
                if name in self.files:
                    continue
                self.files.add(name)
                table = pq.read_table(path, columns=["event_id", "received_at"])
                ids = table.column("event_id").to_pylist()
                received = table.column("received_at").cast("int64").to_pylist()
                self.rows += len(ids)
                for event_id, received_us in zip(ids, received):
                    if event_id not in self.seen:
                        self.seen[event_id] = now
                        self.received[event_id] = received_us / 1e6
            self.stop.wait(0.02)


# ---- one rate, end to end -------------------------------------------------------------------------

def run_rate(emulator_env: dict, rate: int, seconds: float, batch: int, connections: int, transform: bool) -> dict:
    run = f"r{rate}-{int(time.time())}"
    topology = pubsub_local.ensure_topology(pubsub_local.Topology(
        events_topic_id=f"bench-{run}", dead_letter_topic_id=f"bench-{run}-dl"))
    home = pathlib.Path(tempfile.mkdtemp(prefix=f"strata-bench-{run}-"))
    env = {**os.environ, **emulator_env, "STRATA_HOME": str(home), "PYTHONPATH": str(ROOT)}
    keys = home / "write_keys.json"
    key = writekeys.create("bench", keys)
    python = sys.executable
    try:
        with process([python, "-m", "collector", "--topic", topology.events_topic, "--port", "0",
                      "--write-keys", str(keys)], env, ready="listening on") as (coll, line), \
             process([python, "-m", "strata", "ingest", "stream", "--subscription", topology.subscription,
                      "--dead-letter-topic", topology.dead_letter_topic], env,
                     log=home / "stream.log") as (pipe, _):
            url = line.split()[3]
            log = home / "stream.log"
            while "reading " not in (log.read_text(errors="replace") if log.exists() else ""):
                if pipe.poll() is not None:
                    raise RuntimeError(f"strata ingest stream exited: {log.read_text()[-2000:]}")
                time.sleep(0.1)  # its imports (Beam), then it pulls
            time.sleep(1)
            watcher = Watcher(home / "lake")
            watcher.start()
            cpu_before = {n: cpu_seconds(p.pid) for n, p in (("collector", coll), ("pipeline", pipe))}
            cpu_before["emulator"] = cpu_seconds(int(emulator_env["_PID"]))
            started = time.time()
            results, generator_cpu = offer_load(url, key, run, rate, seconds, batch, connections)
            offered_s = time.time() - started
            accepted = {i for _, status, ids in results if status == 202 for i in ids}
            # Drain: wait while rows keep arriving (a backlog is not loss), at most 30 s of no progress.
            last, last_change = -1, time.time()
            while not accepted <= watcher.seen.keys() and time.time() - last_change < 30:
                if len(watcher.seen) != last:
                    last, last_change = len(watcher.seen), time.time()
                time.sleep(0.1)
            drained_s = time.time() - started
            cpu = {n: cpu_seconds(p.pid) - cpu_before[n] for n, p in (("collector", coll), ("pipeline", pipe))}
            cpu["emulator"] = cpu_seconds(int(emulator_env["_PID"])) - cpu_before["emulator"]
            watcher.stop.set()
            watcher.join()
        acked = {i: t for t, status, ids in results if status == 202 for i in ids}
        latencies = [watcher.seen[i] - t for i, t in acked.items() if i in watcher.seen]
        # where the time goes: 202 → its micro-batch closed (Pub/Sub + batching), → queryable
        waiting = [watcher.received[i] - t for i, t in acked.items() if i in watcher.seen]
        writing = [watcher.seen[i] - watcher.received[i] for i in acked if i in watcher.seen]
        by_window: dict[int, list] = {}
        for i, t in acked.items():
            if i in watcher.seen:
                by_window.setdefault(int((t - started) // 10), []).append(watcher.seen[i] - t)
        seen_times = sorted(watcher.seen[i] for i in acked if i in watcher.seen)
        sustained = len(seen_times) / max(seen_times[-1] - started, 1e-9) if seen_times else 0.0
        figures = {
            "offered_events_per_s": rate, "seconds": round(offered_s, 1), "batch": batch,
            "requests": len(results), "non_202": sum(1 for _, s, _ in results if s != 202),
            "accepted_202": len(acked), "sustained_events_per_s": round(sustained),
            "latency_p50_s": round(percentile(latencies, 0.50), 3),
            "latency_p99_s": round(percentile(latencies, 0.99), 3),
            "latency_max_s": round(max(latencies), 3) if latencies else None,
            "p99_202_to_batch_closed_s": round(percentile(waiting, 0.99), 3),
            "p99_batch_closed_to_queryable_s": round(percentile(writing, 0.99), 3),
            "p99_per_10s_window_s": [round(percentile(v, 0.99), 2) for _, v in sorted(by_window.items())],
            "lost": len(set(acked) - watcher.seen.keys()), "raw_rows": watcher.rows,
            "raw_parts": len(watcher.files), "drained_after_s": round(drained_s, 1),
            "cpu_s": {"load_generator": round(generator_cpu, 1), **{k: round(v, 1) for k, v in cpu.items()}},
        }
        if transform:
            figures.update(staging_duplicates(env, set(acked)))
        return figures
    finally:
        shutil.rmtree(home, ignore_errors=True)


def staging_duplicates(env: dict, accepted: set) -> dict:
    subprocess.run([sys.executable, "-m", "strata", "transform", "--no-tests", "--json"], env=env, cwd=ROOT,
                   check=True, capture_output=True)
    import duckdb

    con = duckdb.connect(str(pathlib.Path(env["STRATA_HOME"]) / "warehouse.duckdb"), read_only=True)
    try:
        rows, unique = con.execute("select count(*), count(distinct event_id) from staging.stg_events").fetchone()
    finally:
        con.close()
    return {"staging_rows": rows, "staging_duplicates": rows - unique, "staging_missing": len(accepted) - unique}


# ---- the runner candidates ------------------------------------------------------------------------

def candidates(sizes: list[int], repeat: int) -> list[dict]:
    import apache_beam as beam
    from apache_beam.runners.portability.fn_api_runner import FnApiRunner

    from beam_pipelines.local_stream import local_graph
    from beam_pipelines.microbatch import MicroBatchGraph
    from beam_pipelines.records import Message, RecordBatch, SubscriptionOrigin

    origin = SubscriptionOrigin("projects/strata-local/subscriptions/bench")
    now = __import__("datetime").datetime.now(__import__("datetime").timezone.utc).isoformat()
    rows = []
    for size in sizes:
        def batch(tag):
            now_us = time.time_ns() // 1000
            return RecordBatch(origin, f"{tag}-{size}-{time.time_ns()}",
                               [Message(str(i), now_us, {}) for i in range(size)],
                               [orjson.dumps(event("c", i, now)) for i in range(size)], now_us)

        timings = {}
        with tempfile.TemporaryDirectory() as tmp:
            lake = pathlib.Path(tmp) / "lake"
            build = local_graph(lake)
            graph = MicroBatchGraph(build)
            graph.run([batch("warm")])
            best = float("inf")
            for _ in range(repeat):
                b = batch("mb")
                t = time.perf_counter()
                graph.run([b])
                best = min(best, time.perf_counter() - t)
            timings["micro_batch_graph"] = best
            best = float("inf")
            for _ in range(repeat):
                b = batch("fn")
                t = time.perf_counter()
                with beam.Pipeline(runner=FnApiRunner()) as p:
                    build(p | beam.Create([b]))
                best = min(best, time.perf_counter() - t)
            timings["fnapi_runner_per_batch"] = best
        for name, seconds in timings.items():
            rows.append({"candidate": name, "batch_events": size, "seconds_per_batch": round(seconds, 4),
                         "events_per_s": round(size / seconds)})
    return rows


# ---- ceilings -----------------------------------------------------------------------------------

def ceilings(emulator_env: dict, batch: int, seconds: int) -> dict:
    out = {}
    topology = pubsub_local.ensure_topology(pubsub_local.Topology(events_topic_id=f"ceil-{int(time.time())}",
                                                                  dead_letter_topic_id=f"ceil-{int(time.time())}-dl"))
    home = pathlib.Path(tempfile.mkdtemp(prefix="strata-bench-ceil-"))
    env = {**os.environ, **emulator_env, "STRATA_HOME": str(home), "PYTHONPATH": str(ROOT)}
    keys = home / "write_keys.json"
    key = writekeys.create("bench", keys)
    try:
        if shutil.which("wrk"):
            body = orjson.dumps({"batch": [event("w", i, "2026-01-01T00:00:00Z") for i in range(batch)]})
            script = home / "post.lua"
            script.write_text('wrk.method = "POST"\nwrk.body = ' + json.dumps(body.decode()) +
                              f'\nwrk.headers["Authorization"] = "Bearer {key}"\n'
                              'wrk.headers["Content-Type"] = "application/json"\n')
            with process([sys.executable, "-m", "collector", "--topic", topology.events_topic, "--port", "0",
                          "--write-keys", str(keys)], env, ready="listening on") as (_, line):
                url = line.split()[3]
                res = subprocess.run(["wrk", "-t1", "-c16", f"-d{seconds}s", "-s", str(script), "--latency", url + "/v1/events"],
                                     capture_output=True, text=True)
            rps = float(next(l.split()[1] for l in res.stdout.splitlines() if l.startswith("Requests/sec")))
            out["collector_wrk"] = {"requests_per_s": round(rps), "events_per_s": round(rps * batch), "batch": batch,
                                    "latency": [l.strip() for l in res.stdout.splitlines() if "%" in l][:4]}
        # the pipeline alone: drain a backlog of pre-published messages
        from strata_core.pubsub import publisher_client

        n = 60_000
        publisher = publisher_client()
        now = __import__("datetime").datetime.now(__import__("datetime").timezone.utc).isoformat()
        futures = [publisher.publish(topology.events_topic, orjson.dumps(event("p", i, now))) for i in range(n)]
        for f in futures:
            f.result()
        pipe_home = home / "pipe"
        env2 = {**env, "STRATA_HOME": str(pipe_home)}
        started = time.time()
        with process([sys.executable, "-m", "strata", "ingest", "stream", "--subscription", topology.subscription,
                      "--json"], env2, log=home / "pipe.log"):
            watcher = Watcher(pipe_home / "lake")
            watcher.start()
            while len(watcher.seen) < n and time.time() - started < 300:
                time.sleep(0.2)
            watcher.stop.set()
        times = sorted(watcher.seen.values())
        out["pipeline_drain"] = {"messages": n, "events_per_s": round(n / (times[-1] - times[0])) if len(times) > 1 else 0,
                                 "first_row_after_s": round(times[0] - started, 1) if times else None}
    finally:
        shutil.rmtree(home, ignore_errors=True)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rates", default="1000,2000,4000", help="offered events/s, comma-separated")
    parser.add_argument("--seconds", type=float, default=60, help="seconds of load per rate (default 60)")
    parser.add_argument("--batch", type=int, default=20, help="events per POST (default 20)")
    parser.add_argument("--connections", type=int, default=8, help="keep-alive connections (default 8)")
    parser.add_argument("--no-transform", action="store_true", help="skip the staging duplicate check")
    parser.add_argument("--candidates", action="store_true", help="time the local runner candidates")
    parser.add_argument("--ceilings", action="store_true", help="collector alone (wrk), pipeline alone")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    # SIGTERM unwinds like Ctrl-C, so the emulator, collector and pipeline it started are stopped.
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    OUT.mkdir(parents=True, exist_ok=True)
    if args.candidates:
        rows = candidates([100, 1000, 5000, 20000], repeat=3)
        for r in rows:
            print(f"{r['candidate']:<24} {r['batch_events']:>7,} events  {r['seconds_per_batch'] * 1000:>9.1f} ms"
                  f"  {r['events_per_s']:>9,} events/s", flush=True)
        (OUT / "stream-candidates.json").write_text(json.dumps(rows, indent=2))
        return 0
    data_dir = pathlib.Path(tempfile.mkdtemp(prefix="strata-bench-pubsub-"))
    with pubsub_local.running_emulator(data_dir) as emulator:
        emulator_env = {"PUBSUB_EMULATOR_HOST": emulator.host, "_PID": str(emulator.process.pid)}
        if args.ceilings:
            result = ceilings(emulator_env, args.batch, 15)
            print(json.dumps(result, indent=2))
            (OUT / "stream-ceilings.json").write_text(json.dumps(result, indent=2))
            return 0
        results = []
        for rate in [int(r) for r in args.rates.split(",")]:
            figures = run_rate(emulator_env, rate, args.seconds, args.batch, args.connections, not args.no_transform)
            results.append(figures)
            print(json.dumps(figures) if args.json else
                  f"offered {rate:>6,}/s: sustained {figures['sustained_events_per_s']:>6,}/s, p50 "
                  f"{figures['latency_p50_s']:.3f} s, p99 {figures['latency_p99_s']:.3f} s, lost {figures['lost']}, "
                  f"staging duplicates {figures.get('staging_duplicates', '-')}, non-202 {figures['non_202']}, "
                  f"parts {figures['raw_parts']}, cpu {figures['cpu_s']}", flush=True)
    shutil.rmtree(data_dir, ignore_errors=True)
    (OUT / "stream.json").write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

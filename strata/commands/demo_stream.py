"""The streaming half of ``strata demo``: emulator → collector → ``strata ingest stream``.

:func:`start` starts Google's Pub/Sub emulator, creates the topics and subscriptions, a write key,
the collector and the streaming pipeline; sends a slice of the generated critical events
(purchases, refunds, signups, errors: new ids, timestamped now) through the collector; waits
until the pipeline has written them to the lake; then runs an incremental ``strata transform``,
because the API serves the dbt layers (staging and marts), not raw: the running API sees the
new data version on its next request, with no restart. ``strata query`` on ``raw.events`` sees
the rows as soon as the pipeline wrote them.

When the emulator is not installed, :func:`start` says so once and returns ``None``: the rest of
the demo still runs.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import pathlib
import signal
import subprocess
import sys
import time
import urllib.request

import orjson

SLICE_EVENTS = 400


@dataclasses.dataclass
class StreamingDemo:
    emulator: object
    processes: list
    collector_url: str
    write_key: str
    topology: object

    def stop(self) -> None:
        """SIGTERM each process (the pipeline finishes its micro-batch), then the emulator."""
        for proc in reversed(self.processes):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in reversed(self.processes):
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
        self.emulator.stop()

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.processes] + [self.emulator.process.pid]


def _critical_slice(data: pathlib.Path, n: int) -> list[dict]:
    from strata_core import contract as c

    now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds")
    picked = []
    for path in sorted(data.glob("events-*")):
        for line in path.read_bytes().splitlines():
            try:
                obj = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            if isinstance(obj, dict) and obj.get("event_type") in c.CRITICAL_EVENT_TYPES and obj.get("user_id"):
                picked.append({**obj, "event_id": f"stream-{len(picked):05d}", "event_timestamp": now})
                if len(picked) == n:
                    return picked
    return picked


def _post(url: str, key: str, events: list[dict]) -> dict:
    request = urllib.request.Request(f"{url}/v1/events", data=orjson.dumps({"batch": events}), method="POST",
                                     headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def start(home: pathlib.Path, data: pathlib.Path, collector_port: int, step) -> StreamingDemo | None:
    from strata import cli, pubsub_local, warehouse
    from strata_core import writekeys

    step("Streaming: starting Google's Pub/Sub emulator, the collector and `strata ingest stream`")
    try:
        emulator = pubsub_local.start_emulator(home / "pubsub")
    except pubsub_local.EmulatorMissing as exc:
        print(f"    skipped the streaming part of the demo: {exc}", flush=True)
        return None
    except RuntimeError as exc:
        print(f"    skipped the streaming part of the demo: the Pub/Sub emulator did not start ({exc})", flush=True)
        return None
    os.environ["PUBSUB_EMULATOR_HOST"] = emulator.host
    topology = pubsub_local.ensure_topology()
    key = writekeys.create(f"demo-{time.strftime('%Y%m%d-%H%M%S')}")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, (str(pathlib.Path(__file__).resolve().parents[2]),
                                                                      os.environ.get("PYTHONPATH"))))}
    python = sys.executable
    collector = subprocess.Popen([python, "-m", "collector", "--topic", topology.events_topic,
                                  "--port", str(collector_port)], stdout=subprocess.PIPE,
                                 stderr=open(home / "collector.log", "ab"), env=env, start_new_session=True)
    line = collector.stdout.readline().decode()
    if "listening on" not in line:
        collector.kill()
        emulator.stop()
        print(f"    skipped the streaming part of the demo: the collector did not start (see {home / 'collector.log'})")
        return None
    url = line.split()[3]
    (home / "stream.log").write_text("")
    pipeline = subprocess.Popen([python, "-m", "strata", "ingest", "stream", "--subscription", topology.subscription,
                                 "--dead-letter-topic", topology.dead_letter_topic],
                                stdout=open(home / "stream.log", "ab"), stderr=subprocess.STDOUT, env=env,
                                start_new_session=True)
    demo = StreamingDemo(emulator, [collector, pipeline], url, key, topology)
    log = home / "stream.log"
    deadline = time.monotonic() + 120
    while "reading " not in log.read_text(errors="replace") and time.monotonic() < deadline:
        if pipeline.poll() is not None:
            demo.stop()
            print(f"    skipped the streaming part of the demo: `strata ingest stream` exited (see {log})")
            return None
        time.sleep(0.2)  # its imports (Beam) take a few seconds; then it pulls

    events = _critical_slice(data, SLICE_EVENTS)
    step(f"Streaming {len(events)} critical events (purchase, refund, signup, error; timestamped now) "
         f"through the collector → Pub/Sub → the streaming pipeline")
    started = time.monotonic()
    accepted = sum(_post(url, key, events[i:i + 100])["accepted"] for i in range(0, len(events), 100))
    seen = dead = 0
    while time.monotonic() - started < 60:
        (seen, dead), = warehouse.query(
            "select (select count(*) from raw.events where event_id like 'stream-%'), "
            "(select count(distinct row_key) from raw.dead_letters where event_id like 'stream-%')")[1]
        if seen + dead >= accepted:
            break
        time.sleep(0.2)
    print(f"    {accepted} accepted by the collector (202); {time.monotonic() - started:.1f} s after the first "
          f"POST {seen} were queryable in raw.events and {dead} in raw.dead_letters (they break a contract "
          "rule, as a slice of generated events does)", flush=True)
    step("Incremental `strata transform`, so the API's staging and marts include them (the API keeps running)")
    cli.main(["transform", "--no-tests"])
    return demo


def instructions(demo: StreamingDemo, api_url: str, token: str, home: pathlib.Path) -> str:
    today = dt.datetime.now(dt.timezone.utc).date().isoformat()
    user = _first_streamed_user()
    query = (f'{{ userEvents(userId: "{user}", limit: 3) {{ eventId eventType eventTimestamp amount }} }}')
    answer = _graphql(api_url, token, query)
    curl_event = json.dumps({"event_id": "my-1", "event_type": "signup", "user_id": "u-new",
                             "event_timestamp": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")})
    return "\n".join([
        f"Collector:  {demo.collector_url}/v1/events   (write key, shown once: {demo.write_key})",
        f"  curl -s {demo.collector_url}/v1/events -H 'Authorization: Bearer {demo.write_key}' \\",
        f"       -d '{curl_event}'",
        f"Streamed events in the API (a streamed user's newest events):",
        f"  {query}",
        f"  → {answer}",
        f"  {{ revenueMetrics(dateRange: {{start: \"{today}\", end: \"{today}\"}}) {{ totalRevenue orders }} }}",
        f"Streamed rows in raw, live (no transform needed):",
        f"  STRATA_HOME={home} .venv/bin/strata query \"select event_type, count(*) from raw.events "
        "where ingest_source = 'stream' group by 1\"",
        f"  per-minute counts: ... \"select * from raw.event_counts_per_minute order by window_start desc, pane_index desc limit 8\"",
        f"  pipeline log: {home / 'stream.log'}   collector log: {home / 'collector.log'}",
    ])


def _first_streamed_user() -> str:
    from strata import warehouse

    rows = warehouse.query("select user_id from raw.events where event_id like 'stream-%' and event_type = 'purchase' "
                           "order by event_id limit 1")[1]
    return rows[0][0] if rows else ""


def _graphql(api_url: str, token: str, query: str) -> str:
    request = urllib.request.Request(f"{api_url}/graphql", data=json.dumps({"query": query}).encode(), method="POST",
                                     headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.dumps(json.loads(response.read()).get("data"))[:400]
    except OSError as exc:
        return f"(the API did not answer: {exc})"

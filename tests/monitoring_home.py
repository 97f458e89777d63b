"""A $STRATA_HOME with five weeks of generated events, ingested and built by the real commands,
for the monitoring tests (``strata check``, the dashboards, the browser tests).

The range starts on a Monday and ends at most a week before today, so the days keep their
weekdays from one test run to the next (the anomaly detector judges by weekday) while the data
stays recent. ``drop_purchases_on_last_day`` removes half the purchases of the last day from
the input before anything is ingested: the injected anomaly.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import pathlib
import subprocess
import sys

REPO = pathlib.Path(__file__).resolve().parents[1]
USERS, DAYS, SEED = 1000, 35, 5


@dataclasses.dataclass
class Home:
    path: pathlib.Path
    data: pathlib.Path
    first_day: dt.date
    last_day: dt.date

    def env(self) -> dict:
        env = {**os.environ, "STRATA_HOME": str(self.path)}
        env.pop("DATABASE_URL", None)  # the site under test keeps its own SQLite under this home
        env.pop("STRATA_ALERT_WEBHOOK_URL", None)
        return env

    def strata(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        done = subprocess.run([sys.executable, "-m", "strata", *args], cwd=REPO, env=self.env(),
                              capture_output=True, text=True, timeout=900)
        if check:
            assert done.returncode == 0, f"strata {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
        return done

    def check_json(self, *args: str) -> tuple[int, dict]:
        done = self.strata("check", "--json", *args, check=False)
        assert done.returncode in (0, 1), done.stderr
        return done.returncode, json.loads(done.stdout)


def first_monday(today: dt.date | None = None) -> dt.date:
    today = today or dt.datetime.now(dt.timezone.utc).date()
    start = today - dt.timedelta(days=DAYS + 1)
    return start - dt.timedelta(days=start.weekday())


def _utc_date(value) -> dt.date | None:
    try:
        if isinstance(value, (int, float)):
            return dt.datetime.fromtimestamp(value / 1000, dt.timezone.utc).date()
        return dt.datetime.fromisoformat(str(value)).astimezone(dt.timezone.utc).date()
    except (ValueError, OverflowError, OSError):
        return None


def drop_half_the_purchases(path: pathlib.Path, day: dt.date) -> int:
    """Remove every other purchase of UTC ``day`` from an NDJSON file; returns how many."""
    kept, dropped, seen = [], 0, 0
    for line in path.read_bytes().splitlines(keepends=True):
        try:
            event = json.loads(line)
        except ValueError:
            kept.append(line)
            continue
        if isinstance(event, dict) and event.get("event_type") == "purchase" and \
                _utc_date(event.get("event_timestamp")) == day:
            seen += 1
            if seen % 2 == 0:
                dropped += 1
                continue
        kept.append(line)
    path.write_bytes(b"".join(kept))
    return dropped


def build(path: pathlib.Path, *, drop_purchases_on_last_day: bool = False) -> Home:
    path.mkdir(parents=True, exist_ok=True)
    first = first_monday()
    home = Home(path, path / "data", first, first + dt.timedelta(days=DAYS - 1))
    home.strata("generate", "--users", str(USERS), "--days", str(DAYS), "--seed", str(SEED),
                "--start-date", first.isoformat(), "--out", str(home.data))
    if drop_purchases_on_last_day:
        dropped = sum(drop_half_the_purchases(f, home.last_day) for f in sorted(home.data.glob("events-*")))
        assert dropped > 20, dropped
    home.strata("ingest", "batch", "--input", str(home.data / "events-*"),
                "--users-input", str(home.data / "users.jsonl"))
    home.strata("transform")
    return home

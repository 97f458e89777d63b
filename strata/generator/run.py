"""Drive one generation: behaviour → time-ordered files with noise → ground truth and sidecars.

Outputs in ``out``:

* ``events-NNNNN.<ext>``     – the event files, each a consecutive slice of the time range;
* ``ground_truth.json``      – see :mod:`strata.generator.truth`;
* ``expected_errors.jsonl``  – one row per bad record: ``file``, ``line`` (1-based physical line,
  blank lines counted; the record number for Avro/Parquet), ``record`` (1-based, blank lines not
  counted), ``error_type``, ``stage``, ``event_id`` (when it is a string);
* ``users.jsonl``            – a user master file for a subset of the users.

Three independent random streams (behaviour, noise, users file) keep e.g. ``--bad-rate`` from
changing which good events are generated.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import heapq
import operator
import pathlib
import random
import time
from typing import Callable

import orjson

from strata_core import contract as c
from strata.generator import bad_records, behaviour, timestamps
from strata.generator.truth import GroundTruth
from strata.generator.writers import WRITERS

FORMATS = tuple(WRITERS)
CRLF_RATE = 0.03
BLANK_LINE_RATE = 0.0005
#: at most this many > 1 MiB records per run: they are big
MAX_TOO_LARGE = 3
#: a duplicate line follows its original within this many records
MAX_DUPLICATE_DELAY = 2500
USERS_FILE_SHARE = 0.7
OUTPUT_NAMES = ("ground_truth.json", "expected_errors.jsonl", "users.jsonl")


@dataclasses.dataclass
class GeneratorConfig:
    out: pathlib.Path
    users: int = 1000
    days: int = 7
    format: str = "ndjson"
    seed: int = 0
    #: first UTC date; default today (UTC) minus ``days``
    start_date: dt.date | None = None
    duplicate_rate: float = 0.01
    bad_rate: float = 0.02
    files: int = 1
    #: approximate total records to write (good + duplicate + bad); scales activity
    events: int | None = None

    def check(self, today: dt.date) -> None:
        """Raise ``ValueError`` naming the option, the rule and what is accepted."""
        if self.users < 1:
            raise ValueError(f"--users {self.users}: must be a positive integer")
        if self.days < 1:
            raise ValueError(f"--days {self.days}: must be a positive integer")
        if self.files < 1:
            raise ValueError(f"--files {self.files}: must be a positive integer")
        if self.format not in FORMATS:
            raise ValueError(f"--format {self.format!r}: must be one of {', '.join(FORMATS)}")
        for name in ("duplicate_rate", "bad_rate"):
            value = getattr(self, name)
            if not 0 <= value <= 0.5:
                raise ValueError(f"--{name.replace('_', '-')} {value}: must be in [0, 0.5]")
        if self.events is not None and self.events < 1:
            raise ValueError(f"--events {self.events}: must be a positive integer")
        start = self.start_date or today - dt.timedelta(days=self.days)
        if start < c.MIN_EVENT_TIME.date():
            raise ValueError(f"--start-date {start}: events before {c.MIN_EVENT_TIME.date()} are rejected "
                             "by the validator; choose a later date")
        if start + dt.timedelta(days=self.days) > today + dt.timedelta(days=1):
            raise ValueError(f"--start-date {start} with --days {self.days} ends after tomorrow (UTC); "
                             "events more than 24 h ahead are rejected; end the range by "
                             f"{today + dt.timedelta(days=1)}")


class _Run:
    def __init__(self, cfg: GeneratorConfig, progress: Callable[[str], None] | None):
        self.cfg = cfg
        self.progress = progress
        today = dt.datetime.now(dt.timezone.utc).date()
        cfg.check(today)
        self.start = cfg.start_date or today - dt.timedelta(days=cfg.days)
        self.start_ms = (self.start - dt.date(1970, 1, 1)).days * timestamps.DAY_MS
        self.range_ms = cfg.days * timestamps.DAY_MS
        tag = hashlib.sha256(f"strata-generate:{cfg.seed}".encode()).hexdigest()
        self.id_prefix = f"evt_{tag[:6]}_"
        self.bad_prefix = f"bad_{tag[:6]}_"
        self.rng = random.Random(f"{tag}:behaviour")
        self.noise = random.Random(f"{tag}:noise")
        self.truth = GroundTruth()
        self.cur_day = 0
        self.buf: list[tuple] = []
        self.pending: dict[int, list[tuple]] = {}
        self.writer_cls = WRITERS[cfg.format]
        self.typed = self.writer_cls.typed
        self.writer = None
        self.file_no = -1
        self.files: list[str] = []
        self.dups: list[tuple] = []
        self.written = 0  # good + duplicate + bad records
        self.bad_no = 0
        self.too_large = 0
        self.bad_types = bad_records.types_for(self.typed)
        self.bad_cycle: list[str] = []

    # ---- behaviour → day buffers ------------------------------------------------------------

    def emit(self, ts_ms: int, obj: dict, event_type: str, user_id, cents) -> None:
        day = (ts_ms - self.start_ms) // timestamps.DAY_MS
        if day == self.cur_day:
            self.buf.append((ts_ms, obj, event_type, user_id, cents))
        elif day < self.cfg.days:  # later in the range; past the end is dropped
            self.pending.setdefault(day, []).append((ts_ms, obj, event_type, user_id, cents))

    def scale_to_events(self, beh: behaviour.Behaviour, users: list) -> None:
        """Scale session rates so that about ``cfg.events`` records get written.

        Events per session are measured on a pilot of sessions with its own random stream.
        """
        cfg = self.cfg
        counts = {"n": 0}

        def count(*_):
            counts["n"] += 1

        pilot = behaviour.Behaviour(random.Random(f"{cfg.seed}:pilot"), self.start_ms, cfg.days, "p_", count)
        pusers = pilot.make_users(200)
        n_pilot = 3000
        for i in range(n_pilot):
            pilot.session(pusers[i % 200], self.start_ms, pilot._session_platform(pusers[i % 200]))
        per_ident = counts["n"] / n_pilot
        counts["n"] = 0
        for i in range(n_pilot):
            pilot.anonymous_session(self.start_ms)
        per_anon = counts["n"] / n_pilot
        counts["n"] = 0
        for i in range(n_pilot):
            pilot._signup_session(pusers[i % 200], self.start_ms)
        per_signup = counts["n"] / n_pilot
        ident, anon, signups = beh.expected_sessions(users)
        variable = ident * per_ident + anon * per_anon
        target_good = cfg.events / (1 + cfg.duplicate_rate + cfg.bad_rate) - signups * per_signup
        beh.set_scale(max(target_good, 0.0) / variable if variable else 1.0, users)

    # ---- writing ---------------------------------------------------------------------------

    def _open(self, file_no: int) -> None:
        while self.file_no < file_no:
            if self.writer is not None:
                self._close_writer()
            self.file_no += 1
            name = f"events-{self.file_no:05d}.{self.writer_cls.ext}"
            self.files.append(name)
            self.writer = self.writer_cls(self.cfg.out / name)

    def _close_writer(self) -> None:
        if not self.typed:
            self.writer.blank()  # every NDJSON file ends with an empty line
            self.truth.blank_lines += 1
        self.writer.close()

    def _crlf(self) -> bool:
        return not self.typed and self.noise.random() < CRLF_RATE

    def _next_bad_type(self) -> str:
        while True:
            if not self.bad_cycle:
                self.bad_cycle = list(self.bad_types)
                self.noise.shuffle(self.bad_cycle)
            error_type = self.bad_cycle.pop()
            if error_type != "record_too_large" or self.too_large < MAX_TOO_LARGE:
                self.too_large += error_type == "record_too_large"
                return error_type

    def _write_bad(self, ts_ms: int, obj: dict) -> None:
        error_type = self._next_bad_type()
        self.bad_no += 1
        record = bad_records.make(error_type, self.noise, f"{self.bad_prefix}{self.bad_no:07x}", ts_ms,
                                  obj.get("user_id"), obj.get("anonymous_id"), self.typed)
        line, record_no = self.writer.write(record, self._crlf())
        self.written += 1
        self.truth.by_error_type[error_type] += 1
        event_id = record.get("event_id") if type(record) is dict else None
        self.errors_f.write(orjson.dumps({
            "file": self.files[-1], "line": line, "record": record_no, "error_type": error_type,
            "stage": c.ERROR_TYPES_BY_NAME[error_type].stage,
            "event_id": event_id if type(event_id) is str else None}) + b"\n")

    def _write_day(self) -> None:
        cfg = self.cfg
        noise = self.noise.random
        dup_rate, bad_rate = cfg.duplicate_rate, cfg.bad_rate
        blank_rate = 0.0 if self.typed else BLANK_LINE_RATE
        n_files, start_ms, range_ms = cfg.files, self.start_ms, self.range_ms
        good = self.truth.good
        dups = self.dups
        self.buf.sort(key=operator.itemgetter(0))
        for ts_ms, obj, event_type, user_id, cents in self.buf:
            file_no = (ts_ms - start_ms) * n_files // range_ms
            if file_no != self.file_no:
                self._open(file_no)
            writer = self.writer
            good(ts_ms, event_type, user_id, cents)
            writer.write(obj, noise() < CRLF_RATE)
            self.written += 1
            if noise() < dup_rate:
                heapq.heappush(dups, (self.written + 1 + int(noise() * MAX_DUPLICATE_DELAY), self.written, obj))
            while dups and dups[0][0] <= self.written:
                self._write_duplicate(heapq.heappop(dups)[2])
            if noise() < bad_rate:
                self._write_bad(ts_ms, obj)
            if noise() < blank_rate:
                writer.blank(noise() < 0.5)
                self.truth.blank_lines += 1

    def _write_duplicate(self, obj: dict) -> None:
        self.writer.write(obj, self._crlf())
        self.written += 1
        self.truth.duplicates += 1

    # ---- the whole run -----------------------------------------------------------------------

    def run(self) -> dict:
        cfg = self.cfg
        t0 = time.perf_counter()
        cfg.out.mkdir(parents=True, exist_ok=True)
        beh = behaviour.Behaviour(self.rng, self.start_ms, cfg.days, self.id_prefix, self.emit)
        users = beh.make_users(cfg.users)
        if cfg.events is not None:
            self.scale_to_events(beh, users)
        with open(cfg.out / "expected_errors.jsonl", "wb") as self.errors_f:
            for d in range(cfg.days):
                self.cur_day = d
                self.buf = self.pending.pop(d, [])
                beh.day(d, users)
                self._write_day()
                if self.progress:
                    self.progress(f"day {d + 1}/{cfg.days}: {self.written:,} records, "
                                  f"{time.perf_counter() - t0:.1f} s")
            self._open(cfg.files - 1)
            while self.dups:
                self._write_duplicate(heapq.heappop(self.dups)[2])
            self._close_writer()
        n_users_file = self._write_users(users)
        truth = self.truth.to_json()
        doc = {"generator": {"seed": cfg.seed, "format": cfg.format, "start_date": self.start.isoformat(),
                             "days": cfg.days, "users": cfg.users, "files": self.files,
                             "contract_version": c.CONTRACT_VERSION}, **truth}
        (cfg.out / "ground_truth.json").write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2) + b"\n")
        seconds = time.perf_counter() - t0
        return {
            "out": str(cfg.out), "format": cfg.format, "files": self.files,
            "records": truth["input_records"], "accepted": truth["accepted"],
            "unique_events": truth["accepted_unique_events"], "bad": truth["dead_lettered"],
            "duplicates": truth["duplicates"], "blank_lines": truth["blank_lines"],
            "users_file_rows": n_users_file, "seconds": round(seconds, 3),
            "records_per_second": round(truth["input_records"] / seconds) if seconds else None,
        }

    def _write_users(self, users: list) -> int:
        """``users.jsonl``: users who existed before the range or whose signup event was written."""
        rng = random.Random(f"{self.cfg.seed}:users")
        end_ms = self.start_ms + self.range_ms
        n = 0
        with open(self.cfg.out / "users.jsonl", "wb") as f:
            for u in users:
                created = u.created_ms if u.signup_day is None else u.signup_ms
                if rng.random() >= USERS_FILE_SHARE or created is None or created >= end_ms:
                    continue
                f.write(orjson.dumps({"user_id": u.user_id, "created_at": timestamps.rfc3339_utc(created),
                                      "country": u.country, "plan": u.plan, "traits": u.traits}) + b"\n")
                n += 1
        return n


def existing_outputs(out: pathlib.Path) -> list[pathlib.Path]:
    """Files a previous run left in ``out`` (event files of any format and the sidecars)."""
    if not out.is_dir():
        return []
    found = [p for ext in FORMATS for p in out.glob(f"events-*.{ext}")]
    return sorted(found + [out / n for n in OUTPUT_NAMES if (out / n).exists()])


def generate(config: GeneratorConfig, progress: Callable[[str], None] | None = None) -> dict:
    """Write one synthetic data set into ``config.out``; return the run summary.

    Raises ``ValueError`` for an invalid configuration.
    """
    return _Run(config, progress).run()

"""Files that can't be read to their end: one file-level dead letter each, the other files ingested.

A file cut short, not what its extension says, damaged, or unreadable becomes one row of
``raw.dead_letters`` (stage ``decode``, a type of ``contract.FILE_ERROR_TYPES``) with the file, the
byte offset reached and the reason; the summary lists it and the command exits non-zero. Reading
streams, decompression included, so a gzip bomb costs time, never memory.
"""

from __future__ import annotations

import bz2
import gzip
import json
import os
import pathlib
import shutil
import subprocess
import sys
import textwrap
import zlib

import orjson
import pytest

from beam_pipelines import reading
from beam_pipelines.records import FileOrigin, RecordBatch
from beam_pipelines.transforms import DEAD_LETTERS, ParseFn
from strata import cli, warehouse
from strata_core import contract as c

ROOT = pathlib.Path(__file__).resolve().parents[1]


def event_line(i: int) -> bytes:
    return orjson.dumps({"event_id": f"e-{i}", "event_type": "page_view", "user_id": f"u-{i % 7}",
                         "event_timestamp": "2026-06-15T10:00:00Z", "properties": {"page": f"/p/{i}"}})


def ndjson(n: int, start: int = 0) -> bytes:
    return b"".join(event_line(i) + b"\n" for i in range(start, start + n))


def read(path: pathlib.Path) -> tuple[list[tuple[int, bytes]], list]:
    """(position, record) of every record read from ``path``, and the failures reported."""
    records, failures = [], []
    reader = reading.ReadRangeFn()
    for file_range in reading.PlanRangesFn().process(str(path)):
        for batch in reader.process(file_range):
            records.extend(zip(batch.positions, batch.records))
            if batch.failure:
                failures.append(batch.failure)
    return records, failures


# ---- the reader -----------------------------------------------------------------------------------

@pytest.mark.parametrize("suffix, compress", [
    (".gz", gzip.compress), (".bz2", bz2.compress), (".deflate", zlib.compress),
    (".zst", lambda data: __import__("zstandard").ZstdCompressor().compress(data)),
])
def test_a_compressed_file_cut_short_is_reported_after_the_records_before_the_cut(tmp_path, suffix, compress):
    body = ndjson(20_000)
    whole = compress(body)
    (tmp_path / f"whole.jsonl{suffix}").write_bytes(whole)
    (tmp_path / f"cut.jsonl{suffix}").write_bytes(whole[: len(whole) // 2])

    records, failures = read(tmp_path / f"whole.jsonl{suffix}")
    assert not failures and [r for _, r in records] == body.splitlines()

    records, failures = read(tmp_path / f"cut.jsonl{suffix}")
    (failure,) = failures
    assert failure.error_type == "truncated_file" and failure.offset == len(whole) // 2
    assert "cut short" in failure.reason
    lines = body.splitlines()
    assert 0 < len(records) < len(lines)
    assert records == [(n, lines[n - 1]) for n in range(1, len(records) + 1)]  # whole lines only


def test_gzip_members_and_zero_padding_are_one_file(tmp_path):
    path = tmp_path / "members.jsonl.gz"
    path.write_bytes(gzip.compress(ndjson(3)) + gzip.compress(ndjson(2, start=3)) + b"\0" * 512)
    records, failures = read(path)
    assert not failures and [r for _, r in records] == ndjson(5).splitlines()


@pytest.mark.parametrize("name, content, error_type", [
    ("plain-text.jsonl.gz", b'{"event_id": "e-1"}\n' * 100, "corrupt_file"),   # named .gz, not gzip
    ("random.avro", os.urandom(5000), "corrupt_file"),
    ("random.parquet", os.urandom(5000), "corrupt_file"),
])
def test_a_file_that_is_not_what_its_name_says_is_reported(tmp_path, name, content, error_type):
    path = tmp_path / name
    path.write_bytes(content)
    records, failures = read(path)
    assert records == []
    (failure,) = failures
    assert failure.error_type == error_type and 0 <= failure.offset <= len(content)
    assert failure.reason


def test_a_damaged_gzip_keeps_what_came_before_the_damage(tmp_path):
    whole = bytearray(gzip.compress(ndjson(50_000), compresslevel=1))
    whole[len(whole) // 2: len(whole) // 2 + 64] = b"\xff" * 64
    path = tmp_path / "damaged.jsonl.gz"
    path.write_bytes(bytes(whole))
    records, failures = read(path)
    (failure,) = failures
    assert failure.error_type == "corrupt_file" and 0 < failure.offset <= len(whole)
    assert records == [(n, event_line(n - 1)) for n in range(1, len(records) + 1)]


def test_avro_read_as_parquet_and_avro_cut_short(tmp_path):
    status = cli.main(["generate", "--out", str(tmp_path / "gen"), "--users", "60", "--days", "1", "--seed", "5",
                       "--format", "avro", "--files", "1"])
    assert status == 0
    avro = (tmp_path / "gen" / "events-00000.avro").read_bytes()
    (tmp_path / "avro-named.parquet").write_bytes(avro)
    (tmp_path / "cut.avro").write_bytes(avro[: len(avro) // 2])

    records, (failure,) = read(tmp_path / "avro-named.parquet")
    assert records == [] and failure.error_type == "corrupt_file" and "parquet" in failure.reason

    records, (failure,) = read(tmp_path / "cut.avro")
    assert records and failure.error_type == "truncated_file"
    assert [n for n, _ in records] == list(range(1, len(records) + 1))


def test_a_file_that_cannot_be_opened_is_reported(tmp_path):
    file_range = reading.FileRange(str(tmp_path / "gone.jsonl.gz"), "ndjson", 0, 0, -1, 1)
    (batch,) = list(reading.ReadRangeFn().process(file_range))
    assert batch.records == [] and batch.failure.error_type == "unreadable_file"


def test_parse_turns_a_file_failure_into_one_dead_letter():
    from beam_pipelines.records import FileFailure

    origin = FileOrigin("/data/cut.jsonl.gz", "ndjson")
    failure = FileFailure("truncated_file", "the compressed stream ends early", 4096)
    (out,) = list(ParseFn().process(RecordBatch(origin, f"{origin.key}-0000001", [], [], 0, failure)))
    assert out.tag == DEAD_LETTERS
    (row,) = out.value.rows
    assert (row["stage"], row["error_type"], row["error_message"]) == ("decode", "truncated_file", failure.reason)
    assert json.loads(row["attributes"]) == {"source_file": origin.path, "format": "ndjson", "offset": 4096}
    assert row["raw_payload"] == b"" and row["row_key"] == f"{origin.key}-file"


# ---- a gzip bomb ----------------------------------------------------------------------------------

BOMB_SCRIPT = textwrap.dedent("""
    import sys
    from beam_pipelines import reading
    from beam_pipelines.transforms import ParseFn, ValidateFn
    out = []
    for file_range in reading.PlanRangesFn().process(sys.argv[1]):
        for batch in reading.ReadRangeFn().process(file_range):
            assert batch.failure is None, batch.failure
            parsed, dead = ParseFn().parse(batch)
            out.append((batch.positions, [len(r) for r in batch.records],
                        [(d["error_type"], len(d["raw_payload"])) for d in dead]))
    print(out)
    # This process's own peak (VmHWM, kB): getrusage's ru_maxrss would carry the peak of the pytest
    # process that spawned it across the exec, so a big test session would read as this script's.
    with open("/proc/self/status") as status:
        print(next(int(line.split()[1]) for line in status if line.startswith("VmHWM:")) // 1024)  # MiB
""")


@pytest.mark.slow
def test_a_gzip_bomb_streams_through_bounded_memory(tmp_path):
    """1 GiB of zeros in one 'line', between two events: decompressed and skipped as it streams."""
    path = tmp_path / "bomb.jsonl.gz"
    packer = zlib.compressobj(1, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    zeros = b"\0" * (1 << 20)
    with open(path, "wb") as f:
        f.write(packer.compress(event_line(1) + b"\n"))
        for _ in range(1024):
            f.write(packer.compress(zeros))
        f.write(packer.compress(b"\n" + event_line(3) + b"\n") + packer.flush())
    assert path.stat().st_size < 8 << 20

    result = subprocess.run([sys.executable, "-c", BOMB_SCRIPT, str(path)], cwd=ROOT, capture_output=True,
                            text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 0, result.stderr
    chunks, peak_mib = result.stdout.strip().splitlines()
    ((positions, lengths, dead),) = eval(chunks)  # noqa: S307 - our own subprocess's repr
    assert positions == [1, 2, 3]
    assert lengths[1] == c.MAX_KEPT_RECORD_BYTES  # only the head of the 1 GiB line was ever held
    assert dead == [("record_too_large", c.MAX_KEPT_RECORD_BYTES)]
    assert int(peak_mib) < 600, f"peak RSS {peak_mib} MiB while streaming 1 GiB"


# ---- end to end: the other files go on, the summary names the file, the exit status says so -------

def test_bad_files_are_dead_lettered_and_the_run_fails_while_good_files_are_ingested(strata_home, tmp_path, capsys):
    good = ndjson(3_000)
    inputs = tmp_path / "in"
    inputs.mkdir()
    (inputs / "good.jsonl").write_bytes(good)
    whole = gzip.compress(ndjson(40_000, start=10_000))
    (inputs / "cut.jsonl.gz").write_bytes(whole[: len(whole) // 2])
    (inputs / "random.avro").write_bytes(os.urandom(4000))
    capsys.readouterr()
    status = cli.main(["ingest", "batch", "--input", str(inputs / "*"), "--json"])
    captured = capsys.readouterr()
    assert status == 1, captured.err
    assert "could not be read to the end" in captured.err
    summary = json.loads(captured.out.strip().splitlines()[-1])
    assert summary["balanced"] and summary["dead_lettered"] == 0
    failed = {pathlib.Path(f["file"]).name: f for f in summary["failed_files"]}
    assert set(failed) == {"cut.jsonl.gz", "random.avro"}
    assert failed["cut.jsonl.gz"]["error_type"] == "truncated_file"
    assert failed["cut.jsonl.gz"]["offset"] == len(whole) // 2
    assert failed["random.avro"]["error_type"] == "corrupt_file"

    _, rows = warehouse.query("select source_file, count(*) from raw.events group by 1")
    per_file = {pathlib.Path(name).name: n for name, n in rows}
    assert per_file["good.jsonl"] == 3_000  # the good file whole
    assert 0 < per_file["cut.jsonl.gz"] < 40_000 and summary["read"] == 3_000 + per_file["cut.jsonl.gz"]
    _, dead = warehouse.query("select stage, error_type, attributes, raw_payload from raw.dead_letters")
    assert sorted((stage, error_type) for stage, error_type, _, _ in dead) == [
        ("decode", "corrupt_file"), ("decode", "truncated_file")]
    for _, error_type, attributes, payload in dead:
        attrs = json.loads(attributes)
        assert attrs["offset"] == failed[pathlib.Path(attrs["source_file"]).name]["offset"]
        assert bytes(payload) == b""

    # The plain-text summary names the file, the error and the offset too.
    status = cli.main(["ingest", "batch", "--input", str(inputs / "cut.jsonl.gz")])
    out = capsys.readouterr().out
    assert status == 1 and "cut.jsonl.gz" in out and "truncated_file at byte" in out
    shutil.rmtree(inputs)

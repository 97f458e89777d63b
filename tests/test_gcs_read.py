"""Beam reads ``gs://`` paths through the GCS emulator, offline and without the credential wait."""

from __future__ import annotations

import json
import time

import apache_beam as beam
import pytest
from apache_beam.io.filesystems import FileSystems
from apache_beam.runners.portability.fn_api_runner import FnApiRunner
from apache_beam.testing.util import assert_that, equal_to

from beam_pipelines import gcs
from tests.fakes.gcs import gcs_emulator  # noqa: F401  (fixture)
from tests.fakes.network_guard import loopback_only

FILES = {
    "gs://strata-in/dir/a.jsonl": [{"event_id": "a1"}, {"event_id": "a2"}],
    "gs://strata-in/dir/b.jsonl": [{"event_id": "b1"}],
    "gs://strata-in/other/c.jsonl": [{"event_id": "c1"}],  # outside the glob
}


@pytest.fixture
def uploaded(gcs_emulator):  # noqa: F811
    for url, records in FILES.items():
        gcs_emulator.upload(url, "".join(json.dumps(r) + "\n" for r in records).encode())
    return gcs_emulator


class ReadMatchedFiles(beam.PTransform):
    """What the lead's reader does: expand globs with FileSystems.match, open with FileSystems.open."""

    def __init__(self, pattern: str):
        super().__init__()
        self.pattern = pattern

    def expand(self, pbegin):
        def paths(pattern):
            for metadata in FileSystems.match([pattern])[0].metadata_list:
                yield metadata.path

        def lines(path):
            with FileSystems.open(path) as handle:
                for number, line in enumerate(handle.read().splitlines(), start=1):
                    yield path, number, json.loads(line)["event_id"]

        return (pbegin | "Pattern" >> beam.Create([self.pattern])
                | "Match" >> beam.FlatMap(paths)
                | "Reshuffle" >> beam.Reshuffle()
                | "Read" >> beam.FlatMap(lines))


def test_match_and_open_are_fast_and_offline(uploaded):
    with loopback_only():
        started = time.monotonic()
        result = FileSystems.match(["gs://strata-in/dir/*.jsonl"])[0]
        match_s = time.monotonic() - started
        paths = sorted(m.path for m in result.metadata_list)
        assert paths == ["gs://strata-in/dir/a.jsonl", "gs://strata-in/dir/b.jsonl"]
        assert all(m.size_in_bytes > 0 for m in result.metadata_list)
        with FileSystems.open("gs://strata-in/dir/b.jsonl") as handle:
            assert json.loads(handle.read()) == {"event_id": "b1"}
    # Without beam_pipelines.gcs the first match waits 18-30 s on credential retries.
    assert match_s < 5, f"FileSystems.match took {match_s:.1f}s: the credential shortcut is not active"


def test_beam_pipeline_reads_glob(uploaded):
    with loopback_only():
        with beam.Pipeline(runner=FnApiRunner()) as p:
            got = p | ReadMatchedFiles("gs://strata-in/dir/*.jsonl")
            assert_that(got, equal_to([
                ("gs://strata-in/dir/a.jsonl", 1, "a1"),
                ("gs://strata-in/dir/a.jsonl", 2, "a2"),
                ("gs://strata-in/dir/b.jsonl", 1, "b1"),
            ]))


def test_beam_writes_gs_paths_too(uploaded):
    with loopback_only():
        with FileSystems.create("gs://strata-in/out/x.txt") as handle:
            handle.write(b"hello")
        assert uploaded.read("gs://strata-in/out/x.txt") == b"hello"


def test_configure_emulator_refuses_remote_hosts():
    with pytest.raises(ValueError, match="not a loopback URL"):
        gcs.configure_emulator("https://storage.googleapis.com")


def test_fixture_points_beam_at_emulator(gcs_emulator):  # noqa: F811
    import os

    from apache_beam.internal.gcp import auth

    assert os.environ[gcs.ENV_VAR] == gcs_emulator.host
    assert auth._Credentials._credentials_init is True

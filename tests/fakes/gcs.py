"""A GCS emulator fixture: ``gs://`` paths work in Beam (FileSystems) and google-cloud-storage.

Use it from any test module::

    from tests.fakes.gcs import gcs_emulator  # noqa: F401  (pytest fixture)

    def test_reads(gcs_emulator):
        gcs_emulator.upload("gs://in/dir/a.jsonl", b'{"event_id": "1"}\\n')
        FileSystems.match(["gs://in/dir/*.jsonl"])  # goes to the emulator, anonymously

or make it suite-wide by adding that import to ``tests/conftest.py``.

The emulator (``gcp-storage-emulator``, pure Python, in-memory) runs in a thread on a free
127.0.0.1 port. While the fixture is active ``STORAGE_EMULATOR_HOST`` points at it and Beam's
credential cache holds anonymous credentials (``beam_pipelines.gcs.storage_emulator``), so the
first ``FileSystems`` call takes milliseconds instead of ~19 s of Beam credential retries.
Both are restored afterwards.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import pathlib

import pytest

from beam_pipelines.gcs import storage_emulator

PROJECT = "strata-local"


@dataclasses.dataclass
class GcsEmulator:
    host: str
    port: int
    server: object
    client: object  # google.cloud.storage.Client, anonymous, bound to the emulator
    root: pathlib.Path | None = None  # on disk: gs://bucket/name is root/bucket/name

    def create_bucket(self, name: str):
        """Create bucket ``name`` unless it exists; returns it."""
        bucket = self.client.lookup_bucket(name)
        return bucket or self.client.create_bucket(name)

    def upload(self, url: str, data: bytes | str, content_type: str = "application/octet-stream") -> str:
        """Write ``data`` to ``gs://bucket/path`` (bucket created on demand); returns ``url``."""
        if not url.startswith("gs://") or "/" not in url[5:]:
            raise ValueError(f"expected gs://bucket/object, got {url!r}")
        bucket_name, _, name = url[5:].partition("/")
        self.create_bucket(bucket_name).blob(name).upload_from_string(data, content_type=content_type)
        return url

    def read(self, url: str) -> bytes:
        bucket_name, _, name = url[5:].partition("/")
        return self.client.bucket(bucket_name).blob(name).download_as_bytes()


def start_emulator(data_dir=None):
    """Start an emulator on a free loopback port, in memory or (``data_dir``) on disk, objects
    then under :func:`object_root`; returns ``(server, port)``."""
    from gcp_storage_emulator.server import create_server

    logging.getLogger("gcp_storage_emulator").setLevel(logging.WARNING)
    # Port 0: the OS picks a free port, so there is no bind race. The emulator has no public
    # accessor for the bound port, hence the private attribute (checked below).
    server = create_server("127.0.0.1", 0, in_memory=data_dir is None,
                           data_dir=str(data_dir) if data_dir is not None else None)
    server.start()
    httpd = getattr(getattr(server, "_api", None), "_httpd", None)
    if httpd is None:
        server.stop()
        raise RuntimeError("gcp-storage-emulator changed: cannot find the bound port (_api._httpd)")
    return server, httpd.server_address[1]


def object_root(data_dir) -> pathlib.Path:
    """Where an on-disk emulator keeps ``gs://bucket/name``: ``object_root(d) / bucket / name``."""
    from gcp_storage_emulator.settings import STORAGE_DIR

    return pathlib.Path(data_dir) / STORAGE_DIR


@pytest.fixture
def gcs_emulator():
    """A running in-memory GCS emulator with Beam and google-cloud-storage pointed at it."""
    with running() as emulator:
        yield emulator


@contextlib.contextmanager
def running(data_dir=None):
    """A GCS emulator (on disk under ``data_dir``, else in memory) with Beam and
    google-cloud-storage pointed at it for the ``with`` block; yields a :class:`GcsEmulator`."""
    try:
        server, port = start_emulator(data_dir)
    except Exception as exc:  # the package is a pinned dependency; this is a broken install
        from conftest import need_service

        need_service(False, f"gcp-storage-emulator did not start: {exc!r}")
        raise
    host = f"http://127.0.0.1:{port}"
    try:
        with storage_emulator(host):
            from google.auth.credentials import AnonymousCredentials
            from google.cloud import storage

            client = storage.Client(project=PROJECT, credentials=AnonymousCredentials())
            yield GcsEmulator(host=host, port=port, server=server, client=client,
                              root=object_root(data_dir) if data_dir is not None else None)
    finally:
        server.stop()

"""BigQuery clients: production (application default credentials) or a loopback endpoint.

A loopback endpoint (``http://127.0.0.1:PORT``) is a fake (``tests/fakes/bigquery_server.py``)
or an emulator (bqemulator); its client uses ``AnonymousCredentials`` and
``client_options.api_endpoint``, so it never looks up credentials, never probes the metadata
server and never resolves a Google host.
"""

from __future__ import annotations

from google.cloud import bigquery

LOOPBACK_PREFIXES = ("http://127.0.0.1:", "http://localhost:", "http://[::1]:")


def loopback_client(endpoint: str, project: str) -> bigquery.Client:
    """A BigQuery client for a fake or emulator on loopback."""
    if not endpoint.startswith(LOOPBACK_PREFIXES):
        raise ValueError(f"endpoint {endpoint!r} is not loopback; expected http://127.0.0.1:PORT")
    from google.auth.credentials import AnonymousCredentials

    return bigquery.Client(project=project, credentials=AnonymousCredentials(),
                           client_options={"api_endpoint": endpoint.rstrip("/")})


def make_client(project: str, endpoint: str | None = None) -> bigquery.Client:
    """``loopback_client`` when ``endpoint`` is set, else the production client."""
    return loopback_client(endpoint, project) if endpoint else bigquery.Client(project=project)


class LoopbackClient:
    """Picklable stand-in for Beam's ``WriteToBigQuery(test_client=...)``.

    ``google.cloud.bigquery.Client`` refuses to be pickled, and Beam pickles the write DoFn, so
    this carries only ``endpoint`` and ``project`` and builds the real client on first use on the
    worker. Beam hands a ``test_client`` both to its apitools calls (tables.get/insert, never made
    with ``CREATE_NEVER``) and to ``insert_rows_json``; everything is delegated to the client.
    """

    def __init__(self, endpoint: str, project: str):
        self.endpoint = endpoint
        self.project = project
        self._client = None

    def __getstate__(self):
        return {"endpoint": self.endpoint, "project": self.project, "_client": None}

    @property
    def client(self) -> bigquery.Client:
        if self._client is None:
            self._client = loopback_client(self.endpoint, self.project)
        return self._client

    def insert_rows_json(self, *args, **kwargs):
        return self.client.insert_rows_json(*args, **kwargs)

    def __getattr__(self, name):
        if name.startswith("__") or name in ("endpoint", "project", "_client"):
            raise AttributeError(name)
        return getattr(self.client, name)

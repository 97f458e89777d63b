"""A fake BigQuery v2 REST endpoint on 127.0.0.1, for offline tests of the BigQuery sink.

It implements the subset that ``google-cloud-bigquery`` 3.x and Beam 2.77's
``WriteToBigQuery(method=STREAMING_INSERTS)`` actually call (read from their sources):

=========================================================  ==========================================
``POST /bigquery/v2/projects/{p}/datasets``                 datasets.insert (409 if it exists)
``GET  /bigquery/v2/projects/{p}/datasets/{d}``             datasets.get
``POST /bigquery/v2/projects/{p}/datasets/{d}/tables``      tables.insert (409 if it exists)
``GET  /bigquery/v2/projects/{p}/datasets/{d}/tables/{t}``  tables.get (Beam's apitools client too)
``POST .../tables/{t}/insertAll``                           tabledata.insertAll (streaming inserts)
``POST /token``                                             OAuth token endpoint for throwaway keys
=========================================================  ==========================================

Rows are checked against the table schema the way BigQuery's streaming API does it: unknown
fields, missing REQUIRED fields and unparseable values (NUMERIC, INT64, TIMESTAMP, DATE, JSON,
BYTES) come back as ``insertErrors`` with reason ``invalid``; with ``skipInvalidRows=false`` the
other rows of the request get reason ``stopped`` and nothing is stored. ``insertId`` dedupes.

Test hooks:

* ``refuse_prefix`` (default ``"refuse-"``): rows of the tables in ``refuse_tables`` (default
  ``{"events"}``) whose ``event_id`` starts with it are refused with reason ``invalid``, as if
  BigQuery had rejected them.
* ``transient_failures[table_id] = N``: the next N insertAll calls to that table refuse every row
  with reason ``backendError`` (a transient error Beam retries).
* ``requests``: every request as ``(method, path, json_body)``, to assert what a client sent.

It is a conformance aid, not BigQuery: no SQL, no quotas, no partition expiry enforcement.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import decimal
import http.server
import json
import re
import threading
import time
import urllib.parse

_PREFIX = "/bigquery/v2"
_INT64_RE = re.compile(r"^[+-]?\d+$")
_TIMESTAMP_RE = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2}):(\d{2})(\.\d{1,9})?\s*(Z|UTC|[+-]\d{2}:?\d{2})?$",
    re.IGNORECASE)
_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_NUMERIC_MAX_INTEGER_DIGITS = 29
_NUMERIC_MAX_SCALE = 9


class _ApiError(Exception):
    def __init__(self, code: int, reason: str, message: str):
        super().__init__(message)
        self.code, self.reason, self.message = code, reason, message

    def body(self) -> dict:
        status = {400: "INVALID_ARGUMENT", 404: "NOT_FOUND", 409: "ALREADY_EXISTS"}.get(self.code, "UNKNOWN")
        return {"error": {"code": self.code, "message": self.message, "status": status,
                          "errors": [{"message": self.message, "domain": "global", "reason": self.reason}]}}


def _check_value(field: dict, value) -> str | None:
    """Why BigQuery would refuse ``value`` for ``field`` (non-repeated, scalar types), or None."""
    kind = field.get("type", "STRING").upper()
    if isinstance(value, (dict, list)) and kind not in ("JSON", "RECORD", "STRUCT"):
        return f"This field: {field['name']} is not a record."
    if kind == "STRING":
        return None if isinstance(value, (str, int, float, bool)) else "Cannot convert value to string."
    if kind in ("INT64", "INTEGER"):
        if isinstance(value, bool):
            return "Cannot convert value to integer (bad value): " + json.dumps(value)
        if isinstance(value, int) or (isinstance(value, str) and _INT64_RE.match(value)):
            return None if -2**63 <= int(value) < 2**63 else "Value out of range for INT64."
        if isinstance(value, float) and value.is_integer():
            return None
        return f"Cannot convert value to integer (bad value): {value}"
    if kind in ("NUMERIC", "DECIMAL"):
        if isinstance(value, bool):
            return f"Invalid NUMERIC value: {value}"
        try:
            number = decimal.Decimal(str(value))
        except (decimal.InvalidOperation, ValueError):
            return f"Invalid NUMERIC value: {value}"
        if not number.is_finite():
            return f"Invalid NUMERIC value: {value}"
        sign, digits, exponent = number.as_tuple()
        scale = max(0, -exponent)
        integer_digits = max(0, len(digits) + exponent)
        if scale > _NUMERIC_MAX_SCALE or integer_digits > _NUMERIC_MAX_INTEGER_DIGITS:
            return f"Invalid NUMERIC value: {value} (NUMERIC is (38, 9))"
        return None
    if kind == "TIMESTAMP":
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return None  # epoch seconds
        if isinstance(value, str):
            m = _TIMESTAMP_RE.match(value.strip())
            if m:
                try:
                    dt.datetime(*(int(g) for g in m.groups()[:6]))
                    return None
                except ValueError:
                    pass
        return f"Cannot convert value to timestamp: {value}"
    if kind == "DATE":
        if isinstance(value, str) and _DATE_RE.match(value):
            try:
                dt.date.fromisoformat(value)
                return None
            except ValueError:
                pass
        return f"Cannot convert value to date: {value}"
    if kind == "JSON":
        if isinstance(value, str):
            try:
                json.loads(value)
            except ValueError:
                return f"Invalid JSON value: {value[:80]}"
        return None
    if kind == "BYTES":
        if not isinstance(value, str):
            return "Cannot convert value to bytes: expected a base64 string."
        try:
            base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            return "Could not base64-decode bytes value."
        return None
    if kind in ("BOOL", "BOOLEAN"):
        ok = isinstance(value, bool) or (isinstance(value, str) and value.lower() in ("true", "false"))
        return None if ok else f"Cannot convert value to boolean: {value}"
    if kind in ("FLOAT64", "FLOAT"):
        try:
            float(value)
            return None
        except (TypeError, ValueError):
            return f"Cannot convert value to floating point: {value}"
    return None


class FakeBigQuery:
    """The fake service. Use as a context manager, or ``start()`` / ``stop()``.

    ``endpoint`` (``http://127.0.0.1:PORT``) is what ``client_options={"api_endpoint": ...}`` or
    ``BIGQUERY_EMULATOR_HOST`` takes.
    """

    def __init__(self, refuse_prefix: str | None = "refuse-", refuse_tables=("events",)):
        self.refuse_prefix = refuse_prefix
        self.refuse_tables = set(refuse_tables)
        self.transient_failures: dict[str, int] = {}
        self.requests: list[tuple[str, str, object]] = []
        self.datasets: dict[tuple[str, str], dict] = {}
        self.tables: dict[tuple[str, str, str], dict] = {}
        self._rows: dict[tuple[str, str, str], list[dict]] = {}
        self._insert_ids: dict[tuple[str, str, str], set[str]] = {}
        self.insert_all_calls = 0
        self._lock = threading.Lock()
        self._httpd: http.server.ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ---- lifecycle -------------------------------------------------------------------------------
    def start(self) -> "FakeBigQuery":
        fake = self

        class Handler(_Handler):
            service = fake

        self._httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,),
                                        name="fake-bigquery", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._thread.join(timeout=5)
            self._httpd = None

    def __enter__(self) -> "FakeBigQuery":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # ---- inspection ------------------------------------------------------------------------------
    def rows(self, project: str, dataset: str, table: str) -> list[dict]:
        """The rows stored in a table, as the JSON objects the client sent."""
        with self._lock:
            return [dict(r) for r in self._rows.get((project, dataset, table), [])]

    def sent(self, method: str, path_suffix: str) -> list[object]:
        """Bodies of requests with this method whose path ends with ``path_suffix``."""
        return [body for m, path, body in self.requests if m == method and path.endswith(path_suffix)]

    # ---- API -------------------------------------------------------------------------------------
    def handle(self, method: str, path: str, body):
        with self._lock:
            self.requests.append((method, path, body))
        if method == "POST" and path == "/token":
            return 200, {"access_token": "fake-token", "token_type": "Bearer", "expires_in": 3600}
        if not path.startswith(_PREFIX + "/projects/"):
            raise _ApiError(404, "notFound", f"Not found: URL {path}")
        parts = [urllib.parse.unquote(p) for p in path[len(_PREFIX) + 1:].split("/")]
        # projects/{p}/datasets[/{d}[/tables[/{t}[/insertAll]]]]
        if len(parts) < 3 or parts[2] != "datasets":
            raise _ApiError(404, "notFound", f"Not found: URL {path}")
        project = parts[1]
        if len(parts) == 3 and method == "POST":
            return self._insert_dataset(project, body)
        if len(parts) == 4 and method == "GET":
            return 200, self._dataset(project, parts[3])
        if len(parts) == 5 and parts[4] == "tables" and method == "POST":
            return self._insert_table(project, parts[3], body)
        if len(parts) == 6 and parts[4] == "tables" and method == "GET":
            return 200, self._table(project, parts[3], parts[5])
        if len(parts) == 7 and parts[4] == "tables" and parts[6] == "insertAll" and method == "POST":
            return 200, self._insert_all(project, parts[3], parts[5], body or {})
        raise _ApiError(404, "notFound", f"Not found: {method} {path} is not implemented by the fake")

    def _dataset(self, project: str, dataset: str) -> dict:
        with self._lock:
            found = self.datasets.get((project, dataset))
        if found is None:
            raise _ApiError(404, "notFound", f"Not found: Dataset {project}:{dataset}")
        return found

    def _table(self, project: str, dataset: str, table: str) -> dict:
        self._dataset(project, dataset)
        with self._lock:
            found = self.tables.get((project, dataset, table))
            if found is None:
                raise _ApiError(404, "notFound", f"Not found: Table {project}:{dataset}.{table}")
            return dict(found, numRows=str(len(self._rows.get((project, dataset, table), []))))

    def _insert_dataset(self, project: str, body: dict):
        dataset = body["datasetReference"]["datasetId"]
        with self._lock:
            if (project, dataset) in self.datasets:
                raise _ApiError(409, "duplicate", f"Already Exists: Dataset {project}:{dataset}")
            resource = dict(body, kind="bigquery#dataset", id=f"{project}:{dataset}",
                            datasetReference={"projectId": project, "datasetId": dataset},
                            location=body.get("location") or "US",
                            creationTime=str(int(time.time() * 1000)), etag="fake")
            self.datasets[(project, dataset)] = resource
        return 200, resource

    def _insert_table(self, project: str, dataset: str, body: dict):
        self._dataset(project, dataset)
        table = body["tableReference"]["tableId"]
        key = (project, dataset, table)
        with self._lock:
            if key in self.tables:
                raise _ApiError(409, "duplicate", f"Already Exists: Table {project}:{dataset}.{table}")
            resource = dict(body, kind="bigquery#table", id=f"{project}:{dataset}.{table}",
                            tableReference={"projectId": project, "datasetId": dataset, "tableId": table},
                            type="TABLE", creationTime=str(int(time.time() * 1000)), etag="fake",
                            location="US")
            self.tables[key] = resource
            self._rows[key] = []
            self._insert_ids[key] = set()
        return 200, resource

    def _row_error(self, table: str, fields: dict, row, ignore_unknown: bool) -> dict | None:
        if not isinstance(row, dict):
            return {"reason": "invalid", "location": "", "message": "Row is not a JSON object."}
        forced = (self.refuse_prefix and table in self.refuse_tables
                  and str(row.get("event_id", "")).startswith(self.refuse_prefix))
        if forced:
            return {"reason": "invalid", "location": "event_id",
                    "message": f"Refused by the fake (event_id starts with {self.refuse_prefix!r})."}
        for name in row:
            if name not in fields and not ignore_unknown:
                return {"reason": "invalid", "location": name, "message": f"no such field: {name}."}
        for name, field in fields.items():
            value = row.get(name)
            if value is None:
                if field.get("mode", "NULLABLE").upper() == "REQUIRED":
                    return {"reason": "invalid", "location": name,
                            "message": f"Missing required field: {name}."}
                continue
            problem = _check_value(field, value)
            if problem:
                return {"reason": "invalid", "location": name, "message": problem}
        return None

    def _insert_all(self, project: str, dataset: str, table: str, body: dict) -> dict:
        resource = self._table(project, dataset, table)
        key = (project, dataset, table)
        fields = {f["name"]: f for f in resource.get("schema", {}).get("fields", [])}
        entries = body.get("rows", [])
        with self._lock:
            self.insert_all_calls += 1
            if self.transient_failures.get(table, 0) > 0:
                self.transient_failures[table] -= 1
                return {"kind": "bigquery#tableDataInsertAllResponse", "insertErrors": [
                    {"index": i, "errors": [{"reason": "backendError", "location": "",
                                             "message": "Transient failure injected by the fake."}]}
                    for i in range(len(entries))]}
        errors, good = [], []
        for index, entry in enumerate(entries):
            problem = self._row_error(table, fields, entry.get("json"), bool(body.get("ignoreUnknownValues")))
            if problem:
                errors.append({"index": index, "errors": [dict(problem, debugInfo="")]})
            else:
                good.append((index, entry))
        if errors and not body.get("skipInvalidRows"):
            errors += [{"index": i, "errors": [{"reason": "stopped", "location": "", "debugInfo": "",
                                                "message": ""}]} for i, _ in good]
            errors.sort(key=lambda e: e["index"])
            good = []
        with self._lock:
            for _, entry in good:
                insert_id = entry.get("insertId")
                if insert_id:
                    if insert_id in self._insert_ids[key]:
                        continue
                    self._insert_ids[key].add(insert_id)
                self._rows[key].append(entry["json"])
        response = {"kind": "bigquery#tableDataInsertAllResponse"}
        if errors:
            response["insertErrors"] = errors
        return response


class _Handler(http.server.BaseHTTPRequestHandler):
    service: FakeBigQuery
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out separately: avoid 40 ms stalls

    def log_message(self, fmt, *args):  # keep test output quiet
        pass

    def _serve(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        path = urllib.parse.urlsplit(self.path).path
        try:
            if path == "/token":
                body = dict(urllib.parse.parse_qsl(raw.decode()))
            else:
                body = json.loads(raw) if raw else None
            code, payload = self.service.handle(method, path, body)
        except _ApiError as exc:
            code, payload = exc.code, exc.body()
        except Exception as exc:  # a bug in the fake must show up in the test, not hang it
            code, payload = 500, _ApiError(500, "internalError", f"fake failed: {exc!r}").body()
        data = json.dumps(payload).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        self._serve("GET")

    def do_POST(self):
        self._serve("POST")

    def do_PATCH(self):
        self._serve("PATCH")

    def do_DELETE(self):
        self._serve("DELETE")

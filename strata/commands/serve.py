"""``strata serve [--host 127.0.0.1] [--port 8000]``: the GraphQL API under granian.

Applies Django's migrations first, then replaces this process with the WSGI server serving
``graphql_site.wsgi`` (the same command runs in the Cloud Run container, with
``DJANGO_SETTINGS_MODULE=graphql_site.settings.production``).

The server is granian (Rust HTTP, WSGI workers) by default: measured against gunicorn's gthread
workers with the same processes and threads, it answers cached queries about 5x faster with a
lower p99 (BENCHMARKS.md, "GraphQL API"). ``--server gunicorn`` runs gunicorn instead.

For ``make demo`` and the benchmark, :func:`start_background` starts the server as a child
process and waits for ``/healthz``; :func:`create_token` issues an API token in-process.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

REPO = pathlib.Path(__file__).resolve().parents[2]
DEFAULT_SETTINGS = "graphql_site.settings.local"


def register(sub) -> None:
    p = sub.add_parser("serve", help="serve the GraphQL API (granian)",
                       description="Apply migrations, then serve GraphQL at /graphql (POST JSON "
                       "{query, variables}; GraphiQL for browsers locally), /healthz and /admin/.")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")),
                   help="port (default $PORT, else 8000; Cloud Run sets PORT)")
    p.add_argument("--workers", type=int, default=None,
                   help="worker processes (default: CPU count, at least 2)")
    p.add_argument("--threads", type=int, default=None,
                   help="threads per worker (default 1 on DuckDB, 4 on BigQuery: see default_threads)")
    p.add_argument("--server", default="granian", choices=("granian", "gunicorn"),
                   help="WSGI server (default granian; see BENCHMARKS.md)")
    p.add_argument("--worker-class", default="gthread", choices=("gthread", "sync"),
                   help="gunicorn worker class (default gthread: keep-alive connections)")
    p.add_argument("--access-log", action="store_true", help="log every request to stdout")
    p.add_argument("--background", action="store_true",
                   help="start the server in the background and return once it answers; its pid goes "
                   "to $STRATA_HOME/serve.pid, its output to $STRATA_HOME/serve.log")
    p.set_defaults(func=run)


def _environ() -> dict:
    """The environment the site runs with: local settings unless told otherwise, and the
    repository importable (``graphql_site`` is not an installed package)."""
    from strata_core import paths

    env = dict(os.environ)
    if env.get("STRATA_WAREHOUSE", "duckdb") != "bigquery":
        env.update(paths.OFFLINE_ENV)
    env.setdefault("DJANGO_SETTINGS_MODULE", DEFAULT_SETTINGS)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    return env


def setup_django() -> None:
    """Configure Django in this process (idempotent) and apply migrations."""
    os.environ.update({k: v for k, v in _environ().items() if k in ("DJANGO_SETTINGS_MODULE",)})
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    if os.environ.get("STRATA_WAREHOUSE", "duckdb") != "bigquery":
        from strata_core import paths

        paths.use_offline_env()
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", interactive=False, verbosity=0)


def create_token(name: str, rate_limit_per_minute: int | None = None) -> str:
    """Issue an API token named ``name`` (replacing an earlier token of that name) and return it.

    Used by ``make demo``; the token is only ever shown by the caller.
    """
    setup_django()
    from graphql_site.tokens.models import ApiToken

    ApiToken.objects.filter(name=name).delete()
    _row, token = ApiToken.issue(name, rate_limit_per_minute)
    return token


def _clean_reader_links() -> None:
    """Hard links earlier server processes left to pin warehouse versions (see querylayer.engine)."""
    from strata_core import paths

    shutil.rmtree(paths.home() / ".api-readers", ignore_errors=True)


def default_threads() -> int:
    """Threads per worker process. On DuckDB a request is CPU work in this machine (the query, then
    Python): one thread per worker, as many workers as cores, and requests queue in the server;
    more threads only contend for the GIL (measured: cached 0.74× a do-nothing app with one thread
    against 0.63× with four, uncached p99 lower too; BENCHMARKS.md). On BigQuery a request mostly
    waits on the network, so a worker keeps four in flight."""
    return 4 if os.environ.get("STRATA_WAREHOUSE") == "bigquery" else 1


def gunicorn_argv(host: str, port: int, workers: int | None = None, threads: int | None = None,
                  access_log: bool = False, worker_class: str = "gthread") -> list[str]:
    workers, threads = workers or max(2, os.cpu_count() or 2), threads or default_threads()
    argv = [sys.executable, "-m", "gunicorn", "graphql_site.wsgi:application",
            "--bind", f"[{host}]:{port}" if ":" in host else f"{host}:{port}",
            "--workers", str(workers), "--worker-class", worker_class, "--threads", str(threads),
            "--chdir", str(REPO), "--timeout", "60", "--graceful-timeout", "10",
            # Import Django once in the master: workers fork ready (and together), sharing memory.
            # Safe because nothing opens a connection at import time (all are lazy).
            "--preload", "--worker-tmp-dir", "/dev/shm" if os.path.isdir("/dev/shm") else tempfile.gettempdir(),
            "--log-level", "warning", "--error-logfile", "-"]
    if access_log:
        argv += ["--access-logfile", "-"]
    return argv


def granian_argv(host: str, port: int, workers: int | None = None, threads: int | None = None,
                 access_log: bool = False) -> list[str]:
    workers, threads = workers or max(2, os.cpu_count() or 2), threads or default_threads()
    argv = [sys.executable, "-m", "granian", "--interface", "wsgi", "--host", host, "--port", str(port),
            "--workers", str(workers), "--blocking-threads", str(threads), "--working-dir", str(REPO),
            "--log-level", "warning", "--workers-kill-timeout", "10"]
    if access_log:
        argv.append("--access-log")
    return [*argv, "graphql_site.wsgi:application"]


def server_argv(server: str, host: str, port: int, workers: int | None = None, threads: int | None = None,
                access_log: bool = False, worker_class: str = "gthread") -> list[str]:
    if server == "gunicorn":
        return gunicorn_argv(host, port, workers, threads, access_log, worker_class)
    return granian_argv(host, port, workers, threads, access_log)


def port_busy(host: str, port: int) -> str | None:
    """Why ``host:port`` cannot be bound (e.g. another server holds it), or None if it can.

    Binds and releases it, as the server will (SO_REUSEADDR, like granian and gunicorn), so the answer is
    exact: a connect test would miss an address we may not bind, and a port in TIME_WAIT."""
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            return exc.strerror or str(exc)
    return None


def run(args) -> int:
    from strata_core import paths

    busy = port_busy(args.host, args.port)
    if busy:
        print(f"strata serve: cannot listen on {args.host}:{args.port}: {busy}. Is another `strata serve` "
              "running? Stop it, or pick another port with --port", file=sys.stderr)
        return 2
    if args.background:
        return _run_in_background(args)
    setup_django()
    _clean_reader_links()
    argv = server_argv(args.server, args.host, args.port, args.workers, args.threads, args.access_log,
                       args.worker_class)
    print(f"strata serve: GraphQL on http://{args.host}:{args.port}/graphql "
          f"(health: /healthz, admin: /admin/; home {paths.home_path()})", file=sys.stderr, flush=True)
    os.execve(argv[0], argv, _environ())
    return 0  # pragma: no cover


def _run_in_background(args) -> int:
    from strata_core import paths

    try:
        proc, url = start_background(args.host, args.port, workers=args.workers, threads=args.threads,
                                     worker_class=args.worker_class, server=args.server, healthy_only=False)
    except (RuntimeError, TimeoutError) as exc:
        print(f"strata serve: {exc} (log: {paths.home() / 'serve.log'})", file=sys.stderr)
        return 1
    (paths.home() / "serve.pid").write_text(f"{proc.pid}\n")
    print(f"strata serve: GraphQL on {url}/graphql (health: /healthz, admin: /admin/), in the background: "
          f"pid {proc.pid} (stop it with `kill {proc.pid}`), log {paths.home() / 'serve.log'}; "
          f"home {paths.home_path()}", file=sys.stderr)
    return 0


def wait_healthy(url: str, timeout_s: float = 30.0, proc: subprocess.Popen | None = None,
                 healthy_only: bool = True) -> dict:
    """Poll ``<url>/healthz`` until it answers 200 (any status with ``healthy_only=False``: the
    server is up even while, say, the warehouse is not built yet); returns its JSON."""
    import urllib.error

    deadline = time.monotonic() + timeout_s
    last: Exception | None = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"the server exited with status {proc.returncode} before it was healthy")
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=2) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            if not healthy_only:
                return json.loads(exc.read() or b"{}")
            last = exc
            time.sleep(0.2)
        except Exception as exc:  # noqa: BLE001 - not up yet
            last = exc
            time.sleep(0.2)
    raise TimeoutError(f"{url}/healthz did not answer within {timeout_s} s: {last}")


def start_background(host: str = "127.0.0.1", port: int = 8000, *, log_path: pathlib.Path | None = None,
                     workers: int | None = None, threads: int | None = None, env: dict | None = None,
                     timeout_s: float = 60.0, worker_class: str = "gthread",
                     server: str = "granian", healthy_only: bool = True) -> tuple[subprocess.Popen, str]:
    """Start ``strata serve`` as a child process, wait until healthy; returns (process, base URL).

    Stop it with ``proc.terminate(); proc.wait()``. Output goes to ``log_path`` (default
    ``$STRATA_HOME/serve.log``).
    """
    from strata_core import paths

    log_path = log_path or paths.home() / "serve.log"
    busy = port_busy(host, port)
    if busy:
        raise RuntimeError(f"cannot listen on {host}:{port}: {busy}; pick another --port")
    argv = [sys.executable, "-m", "strata", "serve", "--host", host, "--port", str(port),
            "--worker-class", worker_class, "--server", server]
    if workers:
        argv += ["--workers", str(workers)]
    if threads:
        argv += ["--threads", str(threads)]
    log = open(log_path, "ab")
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env={**_environ(), **(env or {})},
                            cwd=str(REPO), start_new_session=True)
    log.close()
    url = f"http://{host}:{port}"
    try:
        wait_healthy(url, timeout_s, proc, healthy_only)
    except Exception:
        proc.terminate()
        proc.wait(10)
        raise
    return proc, url


def demo_instructions(url: str, token: str, start: str, end: str) -> str:
    """What ``make demo`` prints once the server is up: GraphiQL, the token, three queries.

    ``start``/``end`` are ISO dates inside the generated data.
    """
    queries = [
        f'{{ dailyActiveUsers(date: "{end}") {{ date activeUsers }} }}',
        f'{{ revenueMetrics(dateRange: {{start: "{start}", end: "{end}"}}) {{ totalRevenue orders '
        f'payingUsers averageOrderValue daily {{ date revenue orders }} }} }}',
        f'{{ conversionFunnel(dateRange: {{start: "{start}", end: "{end}"}}) '
        f'{{ steps {{ name users conversionRate }} }} }}',
    ]
    body = json.dumps({"query": queries[0]})
    lines = [
        f"GraphiQL:   {url}/graphql   (open in a browser; in its Headers tab put",
        f'            {{"Authorization": "Bearer {token}"}})',
        f"API token:  {token}   (shown once; make another with `.venv/bin/strata token create NAME`)",
        f"Health:     {url}/healthz",
        "Example queries:",
        *[f"  {q}" for q in queries],
        "From a shell:",
        f"  curl -s {url}/graphql -H 'Authorization: Bearer {token}' -H 'Content-Type: application/json' \\",
        f"       -d '{body}'",
    ]
    return "\n".join(lines)

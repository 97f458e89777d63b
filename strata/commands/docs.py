"""``strata docs [--check]`` and ``strata docs serve``: the event reference and the dbt docs site."""

from __future__ import annotations

import sys


def register(sub) -> None:
    p = sub.add_parser("docs", help="regenerate docs/events.md and build the dbt docs site",
                       description="Regenerate docs/events.md from the event contract, and build the "
                       "dbt docs site (models, columns, tests, lineage) under $STRATA_HOME/dbt/target. "
                       "`strata docs serve` serves that site on loopback, offline.")
    p.add_argument("--check", action="store_true",
                   help="only check docs/events.md: exit 1 if it is out of date (builds nothing)")
    p.set_defaults(func=run)
    actions = p.add_subparsers(dest="action", metavar="ACTION")
    s = actions.add_parser("serve", help="serve the dbt docs site (builds it first if needed)",
                           description="Serve the dbt docs site with `dbt docs serve` on loopback; "
                           "no browser is opened and the page loads nothing from the internet.")
    s.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    s.add_argument("--port", type=int, default=8080, help="port (default 8080)")
    s.set_defaults(func=run_serve)


def run(args) -> int:
    from strata import docs

    if args.check:
        current = docs.DOC_PATH.read_text(encoding="utf-8") if docs.DOC_PATH.exists() else ""
        if current != docs.render():
            print(f"{docs.DOC_PATH} is out of date; run `.venv/bin/strata docs`")
            return 1
        return 0
    print(f"wrote {docs.write()}")
    return _build_site()


def _build_site() -> int:
    from strata import docs
    from strata_core import paths

    try:
        target, catalog = docs.build_dbt_docs()
    except RuntimeError as exc:
        print(f"strata docs: {exc}", file=sys.stderr)
        return 1
    print(f"wrote the dbt docs site {target / 'index.html'}"
          + ("" if catalog else " (no warehouse yet: descriptions and lineage, no column types)")
          + f"; serve it with `.venv/bin/strata docs serve` (home {paths.home_path()})")
    return 0


def run_serve(args) -> int:
    from strata import docs
    from strata.commands import serve
    from strata_core import paths

    busy = serve.port_busy(args.host, args.port)
    if busy:
        print(f"strata docs serve: cannot listen on {args.host}:{args.port}: {busy}; pick another --port",
              file=sys.stderr)
        return 2
    if not (paths.home_path() / "dbt" / "target" / "catalog.json").exists():
        status = _build_site()
        if status:
            return status
    print(f"strata docs serve: the dbt docs site on http://{args.host}:{args.port}/ (Ctrl-C stops it)",
          file=sys.stderr, flush=True)
    try:
        docs.serve_dbt_docs(args.host, args.port)
    except KeyboardInterrupt:
        pass
    return 0

"""The project's generated documentation.

* ``docs/events.md``, rendered from the event contract (``strata_core/contract.py``): generated
  and committed; ``tests/test_templates_and_docs.py`` fails when it drifts. Regenerate with
  ``strata docs`` (or ``make docs``).
* The dbt docs site (:func:`build_dbt_docs`), built under the home by ``strata docs`` and
  served on loopback by ``strata docs serve``.
"""

from __future__ import annotations

import pathlib

from strata_core import contract as c
from strata_core import schemas

DOC_PATH = pathlib.Path(__file__).resolve().parent.parent / "docs" / "events.md"


def _rule(f: c.Field) -> str:
    parts = []
    if f.max_length:
        parts.append(f"≤ {f.max_length} chars")
    if f.identifier:
        parts.append("not only whitespace, no NUL")
    if f.pattern:
        parts.append(f"`{f.pattern}`")
    if f.choices:
        parts.append("one of " + ", ".join(f"`{x}`" for x in f.choices))
    if f.kind == "decimal":
        parts.append(f"≥ {f.minimum}, < 10^{c.AMOUNT_LIMIT_EXPONENT}, ≤ {c.AMOUNT_SCALE} decimal places"
                     if f.minimum is not None else f"< 10^{c.AMOUNT_LIMIT_EXPONENT}, ≤ {c.AMOUNT_SCALE} places")
    if f.kind == "integer" and f.origin == "contract":
        parts.append(f"{f.minimum if f.minimum is not None else '-2^63'} … 2^63 − 1")
    if f.requires:
        parts.append("requires " + ", ".join(f"`{r}`" for r in f.requires))
    if f.default is not None:
        parts.append(f"default `{f.default}`")
    return "; ".join(parts)


def _table(fields, bq_table: str) -> list[str]:
    bq = {x["name"]: x["type"] for x in schemas.bigquery_schema(bq_table)["fields"]}
    arrow = schemas.arrow_schema(bq_table)
    lines = ["| field | required | BigQuery | Arrow | rule | description |", "|---|---|---|---|---|---|"]
    for f in fields:
        lines.append(f"| `{f.name}` | {'yes' if f.required else ''} | {bq[f.name]} | "
                     f"{arrow.field(f.name).type} | {_rule(f)} | {f.description} |")
    return lines


def render() -> str:
    out = [
        f"# Strata event contract v{c.CONTRACT_VERSION}",
        "",
        "_Generated from `strata_core/contract.py` by `strata docs`; do not edit by hand._",
        "",
        "An event is one JSON object: an NDJSON line, an Avro record, a Parquet row or Pub/Sub",
        "message data. Unknown top-level fields are kept in `extra`, as sent. A record over "
        f"{c.MAX_RECORD_BYTES:,} bytes is rejected; `properties`/`context` may nest at most "
        f"{c.MAX_NESTING_LEVELS} levels. `event_timestamp` must lie in [2000-01-01, receive time + 24 h].",
        f"At least one of {', '.join(f'`{n}`' for n in c.IDENTITY_FIELDS)} is a non-empty string.",
        "",
        "**Duplicate keys are rejected** (`duplicate_key`): a record in which any object -- the record",
        "itself, `properties`, `context` or anything nested -- holds the same key twice, however spelt",
        "(`\"id\"` and `\"\\u0069d\"` are the same key). JSON leaves their meaning open and readers",
        "disagree (Python keeps the last value, DuckDB's JSON functions the first, Snowflake refuses",
        "the object), so no reader downstream may see a value the validator did not check.",
        "",
        "**Files**: a file that can't be read to its end (cut short, damaged, not what its extension or",
        "`--format` says, unreadable) becomes one dead letter of stage `decode` -- "
        + ", ".join(f"`{t}`" for t in c.FILE_ERROR_TYPES) + " --",
        "with the file, the byte offset reached and the reason in `attributes`; the records read",
        "before the failure are ingested, the other files too, and the run exits non-zero.",
        "",
        "## Fields sent by producers",
        "",
        *_table([f for f in c.FIELDS if f.origin == "contract"], "events"),
        "",
        "## Columns added by the pipeline (`raw.events`)",
        "",
        *_table([f for f in c.FIELDS if f.origin == "pipeline"], "events"),
        "",
        "## Event types",
        "",
        "Any `event_type` matching the pattern is accepted; these are the known ones.",
        "",
        "| event type | requires | critical (streamed) | properties | description |",
        "|---|---|---|---|---|",
    ]
    for t in c.EVENT_TYPES:
        out.append(f"| `{t.name}` | {', '.join(f'`{r}`' for r in t.requires)} | {'yes' if t.critical else ''} | "
                   f"{', '.join(f'`{p}`' for p in t.properties)} | {t.description} |")
    out += ["", "## Dead-letter error types", "", "Stable names: never renamed.", "",
            "| error_type | stage | meaning |", "|---|---|---|"]
    out += [f"| `{e.name}` | {e.stage} | {e.description} |" for e in c.ERROR_TYPES]
    out += ["", "## `raw.dead_letters`", "", *_table(c.DEAD_LETTER_FIELDS, "dead_letters"),
            "", "## `raw.users`", "", *_table(c.USER_FIELDS, "users"),
            "", "## `raw.event_counts_per_minute` (streaming job)", "",
            *_table(c.EVENT_COUNT_FIELDS, "event_counts_per_minute"),
            "", "## `raw.dead_letter_replays` (`strata replay`)", "",
            *_table(c.DEAD_LETTER_REPLAY_FIELDS, "dead_letter_replays"), ""]
    return "\n".join(out)


def write(path: pathlib.Path = DOC_PATH) -> pathlib.Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(), encoding="utf-8")
    return path


def build_dbt_docs() -> tuple[pathlib.Path, bool]:
    """``dbt docs generate``: the dbt project's documentation site (models, columns, tests,
    lineage) in ``$STRATA_HOME/dbt/target/index.html``. Returns (target dir, catalog included).

    The catalog (column types, row counts) is read from a copy of the warehouse, so a running
    API, which holds the live file open, is never in the way; without a warehouse yet the site
    has descriptions and lineage only (``--empty-catalog``). The page itself loads nothing from
    outside: dbt's usage tracker only starts when the manifest allows anonymous usage stats,
    and ``transforms_sql/dbt_project.yml`` (and the offline environment) turn them off.
    """
    import contextlib
    import shutil

    from strata import transform
    from strata_core import paths

    live = paths.warehouse_path()
    copy = paths.home() / "warehouse.docs.duckdb"
    args = ["docs", *transform.dbt_args("generate", target="duckdb")]
    catalog = live.exists()
    if catalog:
        shutil.copyfile(live, copy)
    else:
        args.append("--empty-catalog")
    try:
        res = transform.invoke_dbt(args, warehouse_file=copy)
    finally:
        for leftover in (copy, copy.with_name(copy.name + ".wal")):
            with contextlib.suppress(FileNotFoundError):
                leftover.unlink()
    if not res.success:
        raise RuntimeError(f"dbt docs generate failed: {res.exception or 'see dbt/logs/dbt.log under the home'}")
    return paths.home() / "dbt" / "target", catalog


def serve_dbt_docs(host: str, port: int) -> None:
    """``dbt docs serve`` on ``host:port`` (no browser is opened); runs until interrupted."""
    from strata import transform

    transform.invoke_dbt(["docs", *transform.dbt_args("serve", target="duckdb"),
                          "--host", host, "--port", str(port), "--no-browser"])

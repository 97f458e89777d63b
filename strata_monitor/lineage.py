"""The dbt graph from raw to the marts, from dbt's ``manifest.json``, with each node's freshness
and test status (from ``monitoring.dbt_results``, via the report)."""

from __future__ import annotations

import datetime as dt
import json
import pathlib

LAYERS = ("raw", "staging", "curated", "mart", "monitoring")


def read_manifest(target_dir: pathlib.Path) -> dict | None:
    try:
        return json.loads((target_dir / "manifest.json").read_text())
    except (FileNotFoundError, ValueError):
        return None


def graph(manifest: dict, last_built: dict[str, dt.datetime], tests_by_model: dict[str, dict],
          now: dt.datetime, stale_after_hours: float = 26.0) -> dict:
    """``{"nodes": [...], "edges": [...]}``: sources and models, in layers; tests become each
    model's counts. A node's ``state`` is ``failing`` (a test failed), ``stale`` (built longer
    ago than ``stale_after_hours``), ``never_built``, ``ok``, or ``source``."""
    nodes, edges = [], []
    for source in manifest.get("sources", {}).values():
        if source.get("package_name") not in (None, manifest.get("metadata", {}).get("project_name"), "strata"):
            continue
        nodes.append({"id": source["unique_id"], "name": f"{source['schema']}.{source['name']}", "layer": "raw",
                      "kind": "source", "state": "source", "description": (source.get("description") or "")[:200],
                      "loaded_at_field": source.get("loaded_at_field"),
                      "freshness": bool((source.get("freshness") or {}).get("error_after", {}).get("count"))})
    for node in manifest.get("nodes", {}).values():
        if node.get("resource_type") != "model":
            continue
        built = last_built.get(node["name"])
        tests = tests_by_model.get(node["unique_id"], {"passed": 0, "failed": 0})
        if tests["failed"]:
            state = "failing"
        elif built is None:
            state = "never_built"
        elif (now - built).total_seconds() > stale_after_hours * 3600:
            state = "stale"
        else:
            state = "ok"
        layer = node.get("schema") if node.get("schema") in LAYERS else (node.get("fqn") or ["", ""])[1]
        nodes.append({"id": node["unique_id"], "name": node["name"], "layer": layer, "kind": "model",
                      "state": state, "materialized": node.get("config", {}).get("materialized"),
                      "description": (node.get("description") or "")[:200],
                      "last_built": built.isoformat() if built else None,
                      "age_hours": round((now - built).total_seconds() / 3600, 1) if built else None,
                      "tests_passed": tests["passed"], "tests_failed": tests["failed"]})
        for parent in (node.get("depends_on") or {}).get("nodes", []):
            if parent.startswith(("model.", "source.")):
                edges.append({"source": parent, "target": node["unique_id"]})
    known = {n["id"] for n in nodes}
    edges = [e for e in edges if e["source"] in known]
    _place(nodes, edges)
    return {"nodes": nodes, "edges": edges}


def _place(nodes: list[dict], edges: list[dict]) -> None:
    """x: the longest path from a source (so every edge points right); y: order within a column."""
    parents: dict[str, list[str]] = {}
    for e in edges:
        parents.setdefault(e["target"], []).append(e["source"])
    depth: dict[str, int] = {}

    def depth_of(node_id: str, seen: frozenset = frozenset()) -> int:
        if node_id not in depth:
            ps = [p for p in parents.get(node_id, []) if p not in seen]
            depth[node_id] = 1 + max((depth_of(p, seen | {node_id}) for p in ps), default=-1)
        return depth[node_id]

    columns: dict[int, list[dict]] = {}
    for n in nodes:
        n["column"] = depth_of(n["id"])
        columns.setdefault(n["column"], []).append(n)
    for column in columns.values():
        column.sort(key=lambda n: (LAYERS.index(n["layer"]) if n["layer"] in LAYERS else 9, n["name"]))
        for row, n in enumerate(column):
            n["row"] = row

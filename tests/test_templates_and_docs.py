"""Generated and declarative artefacts stay in step with the code they describe."""

from __future__ import annotations

import json
import pathlib

from beam_pipelines.options import BatchIngestOptions
from strata import docs

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _option_names(options_cls) -> set[str]:
    import argparse

    parser = argparse.ArgumentParser()
    options_cls._add_argparse_args(parser)
    return {a.dest for a in parser._actions if a.dest != "help"}


def test_flex_template_parameters_match_the_pipeline_options():
    metadata = json.loads((ROOT / "templates/ingest_batch/metadata.json").read_text())
    names = set()
    for param in metadata["parameters"]:
        assert {"name", "label", "helpText", "isOptional", "regexes"} <= set(param), param["name"]
        assert param["label"] and param["helpText"] and param["regexes"]
        names.add(param["name"])
    local_only = {"strata_home", "bq_endpoint"}
    assert names == _option_names(BatchIngestOptions) - local_only


def test_events_doc_is_generated_from_the_contract():
    assert (ROOT / "docs/events.md").read_text(encoding="utf-8") == docs.render(), \
        "docs/events.md is stale: run `strata docs`"

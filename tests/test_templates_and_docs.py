"""Generated and declarative artefacts stay in step with the code they describe."""

from __future__ import annotations

import pathlib

from strata import docs

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_events_doc_is_generated_from_the_contract():
    assert (ROOT / "docs/events.md").read_text(encoding="utf-8") == docs.render(), \
        "docs/events.md is stale: run `strata docs`"

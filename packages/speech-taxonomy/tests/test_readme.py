"""The README cannot drift: its results table is the rendered summary, its examples are the commands' output."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from paperkit.testing import assert_readme_matches_summary
from readme_blocks import NAMES, README, blocks, render
from speech_taxonomy.catalogue import load
from speech_taxonomy.summary import build_summary, comparable

PACKAGE = Path(__file__).resolve().parents[1]


def test_readme_results_table_is_the_rendered_summary():
    assert_readme_matches_summary(PACKAGE)


def test_the_summary_is_what_the_command_computes_from_the_shipped_data():
    saved = json.loads((PACKAGE / "docs" / "default-summary.json").read_text())
    assert comparable(saved) == comparable(build_summary(load())), (
        "docs/default-summary.json is stale: run `speech-taxonomy summary -o "
        "packages/speech-taxonomy/docs/default-summary.json` and `python -m paperkit.report packages/speech-taxonomy`"
    )


@pytest.mark.parametrize("name", NAMES)
def test_readme_block_equals_the_command_output(name):
    got = blocks(README.read_text())
    assert name in got, f"README has no block {name!r}"
    assert got[name] == render(name), f"README block {name!r} is stale: run tests/readme_blocks.py"

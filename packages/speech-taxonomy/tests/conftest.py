"""Fixtures: the hand-countable data folder (see taxonomy_fixture.py) and a writable copy of the shipped data."""

from __future__ import annotations

import copy
import shutil
from pathlib import Path

import pytest
from taxonomy_fixture import EVALS, MODELS, VOCAB, write_data


@pytest.fixture
def mini(tmp_path) -> Path:
    """The hand-countable data folder described in this module's docstring."""
    return write_data(tmp_path / "data")


@pytest.fixture
def fresh():
    """Deep copies of the fixture's parts, to break one thing at a time."""
    return copy.deepcopy(VOCAB), copy.deepcopy(EVALS), copy.deepcopy(MODELS)


@pytest.fixture
def shipped_copy(tmp_path) -> Path:
    """A writable copy of the packaged data folder."""
    from speech_taxonomy.catalogue import default_data_dir

    dst = tmp_path / "shipped"
    shutil.copytree(default_data_dir(), dst)
    return dst

"""Fixtures: the hand-countable data folder (see taxonomy_fixture.py) and a writable copy of the shipped data."""

from __future__ import annotations

import copy
import shutil
from pathlib import Path

import pytest
from taxonomy_fixture import EVALS, MODELS, VOCAB, write_data


@pytest.fixture(autouse=True, scope="session")
def _private_cache(tmp_path_factory):
    """The record of validated data goes to a temporary folder, never to the user's ~/.cache."""
    import os

    old = os.environ.get("SPEECH_TAXONOMY_CACHE")
    os.environ["SPEECH_TAXONOMY_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    yield
    if old is None:
        os.environ.pop("SPEECH_TAXONOMY_CACHE", None)
    else:
        os.environ["SPEECH_TAXONOMY_CACHE"] = old


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

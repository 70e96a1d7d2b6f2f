"""Fast start: a data folder is validated once (pydantic), then read as plain records; any edit re-validates."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from speech_taxonomy.catalogue import CatalogueError, _fast_load, _load, load


def test_fast_records_equal_validated_records(shipped_copy):
    strict, problems = _load(shipped_copy)
    assert problems == [] and strict is not None
    fast = _fast_load(shipped_copy)  # from the TOML files
    assert fast is not None
    assert fast.to_dict() == strict.to_dict()
    assert fast.evaluations == strict.evaluations and fast.models == strict.models
    load(shipped_copy)  # validated, records cached as JSON
    from speech_taxonomy.catalogue import _digest

    cached = _fast_load(shipped_copy, _digest(shipped_copy))  # from the JSON
    assert cached is not None and cached.evaluations == strict.evaluations and cached.files == strict.files


def test_an_edit_after_a_validated_load_is_validated_again(shipped_copy):
    load(shipped_copy)  # validated, digest recorded
    f = shipped_copy / "evaluations" / "dialogue.toml"
    f.write_text(f.read_text().replace('"real_time_harness"', '"streaming"', 1))
    with pytest.raises(CatalogueError, match="'streaming' is a model capability required"):
        load(shipped_copy)


def test_warm_which_does_not_import_pydantic(shipped_copy):
    f = shipped_copy / "models.toml"
    f.write_text(f.read_text() + "\n# a new comment: new bytes, so the first read below validates\n")
    code = (
        "import sys; from speech_taxonomy.cli import main; "
        "main(['--data', sys.argv[1], 'which', '--model', 'hubert']); "
        "print('PYDANTIC', 'pydantic' in sys.modules, file=sys.stderr)"
    )
    env = {**os.environ}
    runs = [
        subprocess.run(
            [sys.executable, "-c", code, str(shipped_copy)], capture_output=True, text=True, env=env
        )
        for _ in range(2)
    ]
    assert all(r.returncode == 0 for r in runs), runs[0].stderr
    assert "PYDANTIC True" in runs[0].stderr  # the first read validates
    assert "PYDANTIC False" in runs[1].stderr  # later reads of the same bytes do not need it
    assert runs[0].stdout == runs[1].stdout


def test_cache_off_always_validates(shipped_copy, monkeypatch):
    monkeypatch.setenv("SPEECH_TAXONOMY_CACHE", "off")
    code = "import sys; from speech_taxonomy.catalogue import load; load(sys.argv[1]); print('pydantic' in sys.modules)"
    for _ in range(2):
        r = subprocess.run([sys.executable, "-c", code, str(shipped_copy)], capture_output=True, text=True)
        assert r.stdout.strip() == "True", r.stderr

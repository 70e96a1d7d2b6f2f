"""speech-taxonomy installs without torch: its own test venv (nox syncs exactly the member and its test group)
holds no torch, and the package imports and runs its CLI without it."""

import importlib.util
import os
import subprocess
import sys

import pytest

exact = pytest.mark.skipif(
    os.environ.get("PAPERKIT_EXACT_VENV") != "1",
    reason="only meaningful in the member's own exact venv (nox)",
)


@exact
def test_the_test_venv_has_no_torch_and_no_other_members_references():
    for name in ("torch", "timm", "lightly", "transformers"):
        assert importlib.util.find_spec(name) is None, f"{name} is installed in speech-taxonomy's test venv"


def test_the_package_and_the_core_cli_import_without_torch():
    code = (
        "import sys, speech_taxonomy, paperkit.config, paperkit.run, paperkit.claims, paperkit.report; "
        "assert 'torch' not in sys.modules, 'torch was imported'"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr

"""The repository's CI helper: which members a change affects."""

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
spec = importlib.util.spec_from_file_location("affected", ROOT / "ci" / "affected.py")
affected_mod = importlib.util.module_from_spec(spec)
spec.loader.exec_module(affected_mod)
affected = affected_mod.affected
ALL = sorted(set(affected_mod.members().values()))


def test_core_lock_root_and_ci_select_everything():
    for path in (
        "shared/core/src/paperkit/run.py",
        "uv.lock",
        "pyproject.toml",
        "noxfile.py",
        "ci/affected.py",
        ".github/workflows/ci.yml",
    ):
        assert affected([path]) == ALL, path
    assert "paperkit" in ALL and "ema-scale" in ALL


def test_package_change_selects_that_package_only():
    assert affected(["packages/ema-scale/src/ema_scale/rules.py"]) == ["ema-scale"]


def test_docs_only_change_selects_nothing():
    assert (
        affected(["README.md", "packages/ema-scale/README.md", "packages/ema-scale/docs/parabola.png"]) == []
    )

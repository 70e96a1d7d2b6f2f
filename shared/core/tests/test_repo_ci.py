"""The repository's CI helper: which members a change affects."""

import importlib.util
import os
import shutil
import subprocess
from pathlib import Path

import pytest

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


def test_top_level_docs_select_nothing_but_a_members_readme_and_docs_are_code():
    assert affected(["README.md", "CONTRIBUTING.md"]) == []
    # a member's README is read by its tests (results table vs docs/default-summary.json, polyview's example)
    assert affected(["packages/polyview/README.md"]) == ["polyview"]
    assert affected(["packages/ema-scale/docs/default-summary.json"]) == ["ema-scale"]
    assert affected(["packages/policy-transfer/src/policy_transfer/docs/x.py"]) == ["policy-transfer"]
    assert affected(["some-new-top-level-file.py"]) == ALL


def test_the_workflow_diffs_against_the_push_before_commit_and_is_bounded():
    text = (ROOT / ".github" / "workflows" / "ci.yml").read_text()
    assert "github.event.before" in text and "HEAD~1" not in text
    assert "timeout-minutes" in text and "permissions:" in text and "prune-cache: true" not in text


@pytest.mark.skipif(
    os.environ.get("PAPERKIT_EXACT_VENV") != "1", reason="only in the core's own exact venv (nox)"
)
def test_the_cores_test_venv_holds_no_members_test_references():
    for name in ("timm", "lightly", "transformers"):
        assert importlib.util.find_spec(name) is None, f"{name} is in the core's test venv"


@pytest.mark.skipif(shutil.which("uv") is None, reason="needs uv on PATH")
def test_cpu_requirements_leave_out_the_cuda_stack_and_keep_the_rest():
    p = subprocess.run(
        [str(ROOT / "ci" / "cpu_requirements.sh"), "ema-scale"], capture_output=True, text=True, timeout=120
    )
    assert p.returncode == 0, p.stderr
    names = [line.split("==")[0] for line in p.stdout.splitlines() if "==" in line]
    assert "timm" in names and "numpy" in names
    assert not [
        n for n in names if n in ("torch", "torchvision", "triton") or n.startswith(("nvidia-", "cuda-"))
    ]


def test_every_trainer_is_also_a_module_that_needs_no_process_sniffing():
    import tomllib

    for pyproject in sorted((ROOT / "packages").glob("*/pyproject.toml")):
        data = tomllib.loads(pyproject.read_text())
        eps = data["project"].get("entry-points", {}).get("paperkit.trainers", {})
        for name, target in eps.items():
            module, _, func = target.partition(":")
            if func == "no_trainer":
                continue  # speech-taxonomy's says there is nothing to train
            leaf = module.split(".")[-1]
            # the entry point parses the config before importing the trainer (train --help loads no torch)
            assert leaf == "cli", f"{name}: entry point {target} (expected PKG.cli:main)"
            main = pyproject.parent / "src" / module.split(".")[0] / "__main__.py"
            assert main.is_file(), f"{name}: no {main.relative_to(ROOT)} (python -m {module.split('.')[0]})"
            text = main.read_text()
            assert f"from .{leaf} import {func}" in text and f'"PAPERKIT_TRAINER", "{name}"' in text, main


def test_every_member_declares_its_own_test_group_with_pytest():
    import tomllib

    for pyproject in [
        ROOT / "shared" / "core" / "pyproject.toml",
        *sorted((ROOT / "packages").glob("*/pyproject.toml")),
    ]:
        groups = tomllib.loads(pyproject.read_text()).get("dependency-groups", {})
        assert any(str(r).startswith("pytest") for r in groups.get("test", [])), f"{pyproject}: no test group"

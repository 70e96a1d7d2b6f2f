"""nox sessions, parametrized over the workspace members.

    uv run nox                      # tests, wheel and lint for every member (what CI runs)
    uv run nox -l                   # list sessions
    uv run nox -k ema-scale         # one member's sessions
    uv run nox -s "bench(package='ema-scale')"

Each member's tests run in a venv of their own, synced from the lock with ``--exact`` from the member's
dependencies and its own ``test`` dependency group: a package whose code imports something it did not declare
fails its own session, and a test-only reference of one member (transformers, lightly) is absent from the others. ``wheel`` installs the member's and the core's wheels into a
fresh venv with the lock's pinned third-party requirements and no workspace, then runs ``train --help``.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

import nox

ROOT = Path(__file__).parent
nox.options.default_venv_backend = "uv"
nox.options.sessions = ["tests", "wheel", "lint"]
nox.options.reuse_venv = "yes"

CORE = "paperkit"
# extras a member's tests need (never the CUDA-only `cuda` extra)
TEST_EXTRAS = {CORE: ["torch", "eval"]}


def _members() -> dict[str, Path]:
    found = {}
    for folder in [ROOT / "shared" / "core", *sorted((ROOT / "packages").glob("*"))]:
        pyproject = folder / "pyproject.toml"
        if pyproject.is_file():
            found[tomllib.loads(pyproject.read_text())["project"]["name"]] = folder
    return found


MEMBERS = _members()
NAMES = list(MEMBERS)
ENV = {"PYTHONDONTWRITEBYTECODE": None}  # unset: compiled bytecode halves torch's import time


def _sync(session: nox.Session, package: str) -> None:
    extras = [a for e in TEST_EXTRAS.get(package, []) for a in ("--extra", e)]
    session.run_install(
        "uv",
        "sync",
        "--locked",
        "--package",
        package,
        "--group",
        "test",  # the member's own test group (pytest and its test-only references)
        "--exact",
        *extras,
        f"--python={session.virtualenv.location}",
        env={"UV_PROJECT_ENVIRONMENT": session.virtualenv.location},
        silent=True,
    )


@nox.session
@nox.parametrize("package", NAMES)
def tests(session: nox.Session, package: str) -> None:
    """The member's test suite (slow tests included), in its own exact venv."""
    _sync(session, package)
    folder = MEMBERS[package]
    # PAPERKIT_EXACT_VENV tells the suites that this venv holds exactly the member and its test group
    session.run(
        "python",
        "-m",
        "pytest",
        str(folder / "tests"),
        "-q",
        *session.posargs,
        env={**ENV, "PAPERKIT_EXACT_VENV": "1"},
    )


# `train --help` in a venv holding only PACKAGE must select PACKAGE; show what it printed when it does not
TRAIN_HELP_CHECK = """
import shutil, subprocess, sys
package = sys.argv[1]
p = subprocess.run([shutil.which("train"), "--help"], capture_output=True, text=True)
first = (p.stdout.splitlines() or [""])[0]
if p.returncode != 0 or f"trainer {package!r}" not in first:
    sys.exit(f"train --help did not select {package} (exit {p.returncode}): {p.stdout[-2000:]}{p.stderr[-2000:]}")
print(first)
"""


@nox.session(reuse_venv=False)
@nox.parametrize("package", NAMES)
def wheel(session: nox.Session, package: str) -> None:
    """Install the member alone from wheels (plus the core's) with the lock's pins; import it; `train --help`."""
    tmp = Path(session.create_tmp()).resolve()
    dist = tmp / "dist"
    session.run("uv", "build", "--package", package, "--wheel", "-o", str(dist), "-q", external=True)
    if package != CORE:
        session.run("uv", "build", "--package", CORE, "--wheel", "-o", str(dist), "-q", external=True)
    req = tmp / "requirements.txt"
    session.run(
        "uv",
        "export",
        "--package",
        package,
        "--frozen",
        "--no-dev",
        "--no-emit-workspace",
        "--no-hashes",
        "--no-header",
        "-q",
        "-o",
        str(req),
        external=True,
    )
    wheels = sorted(str(p) for p in dist.glob("*.whl"))
    session.run(
        "uv",
        "pip",
        "install",
        "-q",
        f"--python={session.virtualenv.location}",
        "-r",
        str(req),
        *wheels,
        external=True,
    )
    module = package.replace("-", "_")
    with session.chdir(tmp):  # away from the workspace: nothing imported from the source tree
        session.run(
            "python",
            "-c",
            f"import {module}; print({module}.__name__, 'imports from', {module}.__file__)",
            env=ENV,
        )
        if package == CORE:
            # the torch-free core: CLI, run folder and claims import without torch; no trainer is installed
            session.run(
                "python",
                "-c",
                "import sys, paperkit.config, paperkit.run, paperkit.claims, "
                "paperkit.launch, paperkit.dispatch; assert 'torch' not in sys.modules",
                env=ENV,
            )
            session.run("train", success_codes=[2], env=ENV)
        else:
            session.run("python", "-c", TRAIN_HELP_CHECK, package, env=ENV)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff check and ruff format --check over the whole repository (the lock's ruff, and nothing else)."""
    session.run_install(
        "uv",
        "sync",
        "--locked",
        "--only-group",
        "lint",
        f"--python={session.virtualenv.location}",
        env={"UV_PROJECT_ENVIRONMENT": session.virtualenv.location},
        silent=True,
    )
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
@nox.parametrize("package", NAMES)
def bench(session: nox.Session, package: str) -> None:
    """The member's benchmark (bench/*.py): its hot path against the named anchor, printing ratios."""
    scripts = sorted((MEMBERS[package] / "bench").glob("*.py"))
    if not scripts:
        session.skip(f"{package} has no bench/ script")
    _sync(session, package)
    for script in scripts:
        session.run(
            "python",
            str(script),
            *session.posargs,
            env={**ENV, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2")},
        )

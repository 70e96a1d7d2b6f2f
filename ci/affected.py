#!/usr/bin/env python3
"""Which workspace members a change affects, as a JSON list (for the CI matrix).

    python ci/affected.py --base origin/main            # diff of HEAD against the merge base
    git diff --name-only A B | python ci/affected.py -   # or a list of paths on stdin

A change to the core, the lock, the root (pyproject.toml, noxfile.py, .python-version), ci/ or the workflows
selects every member; any change under packages/NAME selects NAME (its README and docs/ included: its tests read
them, e.g. the README's results table is checked against docs/default-summary.json); documentation outside the
members (the root README, other top-level *.md) selects none.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EVERYTHING = (
    "shared/",
    "ci/",
    ".github/",
    "uv.lock",
    "pyproject.toml",
    "noxfile.py",
    ".python-version",
    ".ci/",
)


def members() -> dict[str, str]:
    """folder (relative, with trailing slash) -> distribution name."""
    out = {}
    for folder in [ROOT / "shared" / "core", *sorted((ROOT / "packages").glob("*"))]:
        if (folder / "pyproject.toml").is_file():
            name = tomllib.loads((folder / "pyproject.toml").read_text())["project"]["name"]
            out[folder.relative_to(ROOT).as_posix() + "/"] = name
    return out


def is_docs(path: str) -> bool:
    """Documentation that no test reads: top-level prose and images outside every member."""
    p = Path(path)
    return len(p.parts) == 1 and p.suffix.lower() in (".md", ".rst", ".txt", ".png")


def affected(paths: list[str]) -> list[str]:
    found = members()
    every = sorted(set(found.values()))
    selected: set[str] = set()
    for path in paths:
        path = path.strip()
        if not path or is_docs(path):
            continue
        if path.startswith(EVERYTHING) or path in EVERYTHING:
            return every
        for folder, name in found.items():
            if path.startswith(folder):
                selected.add(name)
                break
        else:
            if not path.startswith("packages/"):  # an unknown top-level file: be safe, test everything
                return every
    return sorted(selected)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("source", nargs="?", default=None, help="'-' to read paths from stdin")
    ap.add_argument(
        "--base",
        default="origin/main",
        help="git ref to diff against (merge base with HEAD): the push's `before` commit, or the PR's base branch; "
        "an all-zero or unknown ref selects every member",
    )
    args = ap.parse_args()
    if args.source == "-":
        paths = sys.stdin.read().splitlines()
    else:
        try:
            base = subprocess.run(
                ["git", "merge-base", args.base, "HEAD"], cwd=ROOT, check=True, capture_output=True, text=True
            ).stdout.strip()
            paths = subprocess.run(
                ["git", "diff", "--name-only", base, "HEAD"],
                cwd=ROOT,
                check=True,
                capture_output=True,
                text=True,
            ).stdout.splitlines()
        except subprocess.CalledProcessError:
            paths = ["uv.lock"]  # no usable base (first push): test everything
    print(json.dumps(affected(paths)))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The workspace's one ``train`` command: find the trainer the user meant and run it.

Every member that has a trainer registers it in the ``paperkit.trainers`` entry-point group. Several members
declaring their own ``train`` script would overwrite one ``.venv/bin/train``, and uv tells the child nothing
about ``--package``, so this dispatcher decides, in order:

1. ``--trainer NAME`` on the command line;
2. the nearest ancestor process that is ``uv run ... --package NAME`` (or ``--project PATH``);
3. the environment variable ``PAPERKIT_TRAINER`` (set here for every process a trainer spawns);
4. the current directory inside a workspace member;
5. the only trainer installed;

else it lists the trainers and how to pick one (exit 2). Nothing here imports torch.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from importlib.metadata import entry_points
from pathlib import Path

GROUP = "paperkit.trainers"
ENV = "PAPERKIT_TRAINER"


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def trainers() -> dict[str, object]:
    return {_norm(ep.name): ep for ep in entry_points(group=GROUP)}


def _parent_cmdlines(max_depth: int = 32):
    """Yield the command lines of the ancestors of this process, nearest first."""
    pid = os.getppid()
    for _ in range(max_depth):
        if pid <= 1:
            return
        proc = Path(f"/proc/{pid}")
        if proc.exists():
            try:
                argv = (proc / "cmdline").read_bytes().split(b"\0")
                argv = [a.decode(errors="replace") for a in argv if a]
                stat = (proc / "stat").read_text()
                ppid = int(stat.rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                return
        else:  # no /proc (macOS): ask ps
            try:
                out = subprocess.run(
                    ["ps", "-o", "ppid=,command=", "-p", str(pid)], capture_output=True, text=True, timeout=5
                ).stdout.strip()
                ppid_s, _, cmd = out.partition(" ")
                argv, ppid = cmd.split(), int(ppid_s)
            except (OSError, ValueError, subprocess.SubprocessError):
                return
        yield argv
        pid = ppid


def _project_name(path: Path) -> str | None:
    try:
        data = tomllib.loads((path / "pyproject.toml").read_text())
    except (OSError, tomllib.TOMLDecodeError):
        return None
    name = data.get("project", {}).get("name")
    return _norm(name) if name else None


# uv's options that take a value (global options of `uv` and options of `uv run`, uv 0.9-0.13); every other
# option is a flag. Short options that take a value may carry it attached (`-p3.11`).
_UV_VALUE_LONG = frozenset(
    """
    allow-insecure-host cache-dir color config-file config-setting config-settings-package default-index directory
    env-file exclude-newer exclude-newer-package extra extra-index-url find-links fork-strategy group index
    index-strategy index-url keyring-provider link-mode no-binary-package no-build-isolation-package
    no-build-package no-editable-package no-extra no-group no-sources-package only-group package prerelease
    prerelease-package project python python-platform refresh-package reinstall-package resolution
    upgrade-group upgrade-package with with-editable with-requirements
    """.split()
)
_UV_VALUE_SHORT = frozenset("wifPCp")


def _uv_options(args: list[str]) -> tuple[dict[str, str], int]:
    """Read uv options from the front of ``args``: ``({long name: last value}, index of the first non-option)``."""
    found: dict[str, str] = {}
    j = 0
    while j < len(args):
        a = args[j]
        if a == "--":
            return found, j + 1
        if a.startswith("--"):
            name, eq, value = a[2:].partition("=")
            if name in _UV_VALUE_LONG and not eq:
                if j + 1 >= len(args):
                    return found, len(args)
                value = args[j + 1]
                j += 1
            if name in _UV_VALUE_LONG:
                found[name] = value
        elif a.startswith("-") and len(a) > 1:
            # a cluster of short flags (`-qq`), possibly ending in one that takes a value (`-p 3.11`, `-p3.11`)
            for k, ch in enumerate(a[1:], start=1):
                if ch in _UV_VALUE_SHORT:
                    if k + 1 < len(a):
                        pass  # the value is attached
                    else:
                        j += 1
                    break
        else:
            return found, j
        j += 1
    return found, j


def parse_uv_run(argv: list[str]) -> dict[str, str] | None:
    """The options of a ``uv [global options] run [options] COMMAND ...`` command line (``{"package": ...,
    "project": ..., "directory": ...}`` as given), or None when ``argv`` is not ``uv run``."""
    if not argv:
        return None
    exe = Path(argv[0]).name
    if exe.startswith("python") and len(argv) > 2 and argv[1] == "-m" and argv[2] == "uv":
        rest = argv[3:]
    elif exe in ("uv", "uv.exe"):
        rest = argv[1:]
    else:
        return None
    global_opts, j = _uv_options(rest)
    if j >= len(rest) or rest[j] != "run":
        return None
    run_opts, _ = _uv_options(rest[j + 1 :])
    return {**global_opts, **run_opts}


def _from_uv_run(argv: list[str]) -> str | None:
    """The package named by a ``uv run`` command line (``--package NAME`` or ``--project PATH``), if any."""
    opts = parse_uv_run(argv)
    if not opts:
        return None
    if "package" in opts:
        return _norm(opts["package"])
    if "project" in opts:
        base = Path(opts.get("directory", "."))
        return _project_name(base / opts["project"]) or f"(no project at {opts['project']})"
    return None


def _from_cwd() -> str | None:
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        if (folder / "pyproject.toml").is_file():
            name = _project_name(folder)
            if name:
                return name
    return None


def select(argv: list[str]) -> tuple[str | None, str, list[str]]:
    """Return ``(name, how it was chosen, argv without --trainer)``."""
    rest = list(argv)
    for i, a in enumerate(rest):
        if a == "--trainer" and i + 1 < len(rest):
            name = rest[i + 1]
            del rest[i : i + 2]
            return _norm(name), "--trainer", rest
        if a.startswith("--trainer="):
            del rest[i]
            return _norm(a.split("=", 1)[1]), "--trainer", rest
    for cmd in _parent_cmdlines():
        name = _from_uv_run(cmd)
        if name:
            return name, f"the parent command `uv run --package {name}`", rest
    if os.environ.get(ENV):
        return _norm(os.environ[ENV]), f"${ENV}", rest
    name = _from_cwd()
    if name and name in trainers():
        return name, f"the current directory (inside {name})", rest
    found = trainers()
    if len(found) == 1:
        only = next(iter(found))
        return only, "the only trainer installed", rest
    return None, "", rest


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    name, how, rest = select(argv)
    found = trainers()
    listing = ", ".join(sorted(found)) or "none"
    if name is None:
        print(
            f"train: which trainer? installed: {listing}. Pick one with `uv run --package NAME train` "
            "or `train --trainer NAME`.",
            file=sys.stderr,
        )
        return 2
    if name not in found:
        print(
            f"train: {name} has no trainer (installed trainers: {listing}); chosen by {how}.", file=sys.stderr
        )
        return 2
    if "-h" in rest or "--help" in rest:
        print(f"train: trainer {name!r}, chosen by {how}.")
    os.environ[ENV] = name  # inherited by whatever the trainer spawns (workers, subprocesses)
    fn = found[name].load()
    return int(fn(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())

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


def _from_uv_run(argv: list[str]) -> str | None:
    """The package named by a ``uv run`` command line, if it is one."""
    if not argv:
        return None
    i = 0
    exe = Path(argv[0]).name
    if exe.startswith("python") and len(argv) > 2 and argv[1] == "-m" and argv[2] == "uv":
        i = 2
    elif exe != "uv":
        return None
    if i + 1 >= len(argv) or argv[i + 1] != "run":
        return None
    args = argv[i + 2 :]
    j = 0
    while j < len(args):
        a = args[j]
        if not a.startswith("-"):
            return None  # the command uv runs begins here: no --package before it
        for opt in ("--package", "--project"):
            if a == opt and j + 1 < len(args):
                value = args[j + 1]
            elif a.startswith(opt + "="):
                value = a.split("=", 1)[1]
            else:
                continue
            return _norm(value) if opt == "--package" else _project_name(Path(value))
        j += 1
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

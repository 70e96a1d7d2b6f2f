"""Where a run ran: CPU, GPU, library versions, threads, world size and the git commit.

Recorded in ``config.json`` and ``summary.json``, because the same code and seeds give different floating-point
results on different CPUs (and thread counts): a number without its machine cannot be compared. Torch is only
asked about when the run already imported it.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux, ``platform.processor()`` elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def _version(dist: str) -> str | None:
    try:
        return version(dist)
    except PackageNotFoundError:
        return None


def git_commit(where: Path | None = None) -> str | None:
    """``HEAD`` of the git checkout holding ``where`` (default: this file), with ``-dirty`` for local changes;
    None outside a checkout or without git."""
    cwd = Path(where) if where is not None else Path(__file__).resolve().parent
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{head}-dirty" if dirty else head or None


def collect_provenance(package: str | None = None, config: dict | None = None) -> dict:
    """A JSON-ready record of the machine and software a run used."""
    torch = sys.modules.get("torch")
    gpu = None
    threads: dict[str, int | str | None] = {
        "config": (config or {}).get("threads"),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
    }
    if torch is not None:
        threads["torch"] = torch.get_num_threads()
        try:
            if torch.cuda.is_available():
                gpu = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        except Exception:  # a broken driver must not stop a run from finishing
            gpu = None
    versions = {"python": platform.python_version(), "paperkit": _version("paperkit")}
    for dist in (package, "torch", "numpy"):
        if dist:
            versions[dist] = _version(dist)
    return {
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "gpu": gpu,
        "platform": platform.platform(),
        "versions": versions,
        "threads": threads,
        "world_size": int(os.environ.get("WORLD_SIZE", "1")),
        "git_commit": git_commit(),
    }

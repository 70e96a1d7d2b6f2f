"""Helpers for the packages' test suites (torch-free): interrupt a run mid-way, write a tiny image folder."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path


def interrupt_when(
    path: Path, lines: int, sig: int = signal.SIGINT, timeout: float = 120.0
) -> threading.Thread:
    """Send ``sig`` to this process once the file ``path`` (e.g. a run's metrics.jsonl) holds ``lines`` lines:
    a real Ctrl-C at a point of the run that does not depend on timing. Join the returned thread afterwards."""

    def watch() -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if path.exists() and len(path.read_text().splitlines()) >= lines:
                os.kill(os.getpid(), sig)
                return
            time.sleep(0.002)

    t = threading.Thread(target=watch, daemon=True)
    t.start()
    return t


def write_image_folder(root: Path, classes: int = 2, per_class: int = 6, size: int = 20) -> Path:
    """An ImageFolder layout (``root/classC/I.png``) of random RGB images with a visible per-class signal."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for c in range(classes):
        (root / f"class{c}").mkdir(parents=True)
        for i in range(per_class):
            arr = (rng.random((size, size, 3)) * 255).astype(np.uint8)
            arr[..., c % 3] = 255 if c else 0
            Image.fromarray(arr).save(root / f"class{c}" / f"{i}.png")
    return root


def assert_readme_matches_summary(package_dir: Path, summary: Path | None = None) -> None:
    """Fail when the package README's results block is not its ``docs/default-summary.json`` rendered
    (see :mod:`paperkit.report`)."""
    from .report import readme_mismatch

    diff = readme_mismatch(Path(package_dir), summary)
    assert diff is None, diff


HEAVY = ("torch", "numpy", "timm", "torchvision", "scipy", "sklearn", "gymnasium", "faiss", "transformers")


def assert_help_is_light(module: str, heavy: tuple[str, ...] = HEAVY) -> str:
    """``train --help`` of the trainer in ``module`` (``PKG.cli``) and ``import PKG`` load none of ``heavy``.

    Runs in a fresh interpreter (this test process may already hold torch); returns the help text."""
    import subprocess
    import sys

    code = (
        "import contextlib, io, sys\n"
        f"import {module.split('.')[0]}\n"
        f"from {module} import main\n"
        "out = io.StringIO()\n"
        "with contextlib.redirect_stdout(out):\n"
        "    rc = main(['--help'])\n"
        "assert rc == 0, rc\n"
        f"loaded = sorted(m for m in {heavy!r} if m in sys.modules)\n"
        "print(repr(loaded)); print(out.getvalue())\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    first, _, help_text = proc.stdout.partition("\n")
    assert first == "[]", f"{module}: --help imported {first}"
    assert "usage:" in help_text, help_text
    return help_text

"""Under torchrun with 2 gloo processes the gathered loss and gradients equal one process's (slow)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from polyview import METHODS

HERE = Path(__file__).parent


@pytest.mark.slow
def test_gathered_loss_and_gradients_match_one_process(tmp_path):
    out = tmp_path / "diffs.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc-per-node",
            "2",
            str(HERE / "dist_loss_check.py"),
            str(out),
        ],
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["world"] == 2
    assert set(result["diffs"]) == set(METHODS)
    for method, d in result["diffs"].items():
        assert d["loss_value"] > 0.1 or method == "harmonic", method
        assert d["loss"] < 1e-12, (method, d)
        assert d["param_grad"] < 1e-12, (method, d)
        assert d["z_grad"] < 1e-12, (method, d)

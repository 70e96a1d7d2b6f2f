"""A trained policy saved by the trainer, loaded back, measured and rendered; one-line errors."""

import json
from pathlib import Path

import pytest
import torch
from policy_transfer.evaluate import EvaluateError, load_policy, main, rollouts
from policy_transfer.experiments import phase_seed
from policy_transfer.ring import measure
from policy_transfer.train import main as train

TINY_RING = [
    "--preset",
    "smoke",
    "--experiments",
    "ring",
    "--ring-seeds",
    "2",
    "--ring-lambdas",
    "1",
    "--ring-pretrain-steps",
    "512",
    "--ring-ft-steps",
    "128",
    "--ring-far-steps",
    "128",
]


@pytest.fixture(scope="module")
def ring_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ring") / "run"
    assert train([*TINY_RING, "--out", str(out)]) == 0
    return out


def test_saved_policies_load_back_equal(ring_run):
    """The loaded parameters reproduce, bit for bit, the exact measures the run computed from the trained ones."""
    progress = json.loads((ring_run / "checkpoints" / "progress.json").read_text())
    measured = progress["phases"]["ring/test"]
    for arm in ("distribution", "lambda0", "single", "entropy", "ensemble"):
        pol = load_policy(ring_run, arm)
        assert pol["key"] == "ring/test" and pol["arm"].name == arm
        assert next(iter(pol["params"].values())).shape[0] == 2  # one entry per test seed
        again = measure(pol["cfg"], pol["arm"], pol["family"], pol["params"], phase_seed(0, "ring/test") + 1)
        assert again == measured[arm], arm
    assert pol["arm"].kind == "ensemble"


def test_rollouts_follow_the_greedy_policy_and_render_a_strip(ring_run, tmp_path, capsys):
    pol = load_policy(ring_run, "distribution")
    rolls = rollouts(pol, run=1, latents=3)
    lay = pol["task"]["layout"]
    table = torch.as_tensor(lay.transitions())
    for r in rolls:
        assert r["cells"][0] == (2, 1) and 0.0 <= r["exact_success"] <= 1.0
        for a, b in zip(r["cells"], r["cells"][1:]):  # every step is one legal move (or a bump into a wall)
            assert lay.index(b) in table[lay.index(a)].tolist()
    png = tmp_path / "strip.png"
    assert main([str(ring_run), "--arm", "ensemble", "--latents", "2", "--render", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 1000
    assert "exact source success" in capsys.readouterr().out


def test_missing_or_corrupt_runs_fail_with_one_line(ring_run, tmp_path, capsys):
    def one_line(argv, words):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and words in err, err

    one_line([str(tmp_path / "nowhere")], "no run folder at")
    (tmp_path / "empty").mkdir()
    one_line([str(tmp_path / "empty")], "not a run folder (no config.json)")
    one_line([str(ring_run), "--arm", "oracle"], "no arm 'oracle' in ring/test")
    one_line([str(ring_run), "--run", "7"], "--run 7 is out of range")
    # a copy of the run whose weights are garbage
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(ring_run, bad)
    for w in (bad / "checkpoints").rglob("weights.safetensors"):
        w.write_bytes(b"not a safetensors file")
    one_line([str(bad)], "corrupt checkpoint")
    with pytest.raises(EvaluateError, match="no saved policies"):
        shutil.rmtree(bad / "checkpoints")
        load_policy(bad)

"""The trainer end to end: smoke run, resume after SIGINT, bad input, the paper preset, torchrun."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from paperkit.testing import interrupt_when as _interrupt_when
from paperkit.testing import write_image_folder
from polyview.mi import true_ovr_mi
from polyview.train import main
from safetensors.torch import load_file


def read(folder: Path, name: str):
    return json.loads((folder / name).read_text())


def rows(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]


def final_weights(folder: Path, key: str) -> dict:
    (path,) = (folder / "checkpoints").glob(f"{key.replace('/', '--')}/step-*/weights.safetensors")
    return load_file(str(path))


def test_smoke_run_writes_the_run_folder(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["--preset", "smoke", "--out", str(out)]) == 0
    summary = read(out, "summary.json")
    assert {c["id"] for c in summary["claims"]} == {
        "mi_pvc_rises",
        "mi_geometric_closer",
        "fixed_compute_m4",
        "fixed_k_m4",
    }
    for c in summary["claims"]:
        assert set(c) >= {"id", "statement", "value", "op", "threshold", "passed"}
        assert c["value"] is not None
    assert {"mi.png", "fixed_compute.png"} <= {p.name for p in out.glob("*.png")}
    res = summary["results"]
    # the MI table carries the closed-form truth next to each estimate
    arm = res["mi"]["arms"]["geometric/m4"]
    assert arm["true_ovr_mi"] == pytest.approx(true_ovr_mi(5, 0.5, 4))
    assert arm["candidates"] == 4 * 32 - 3
    # fixed compute: M * K = 64 views per step for every arm, two seeds each
    fc = res["digits"]["fixed_compute"]
    assert {m: v["k"] for m, v in fc.items()} == {"2": 32, "4": 16}
    assert all(len(v["probe_acc_seeds"]) == 2 and 0.1 < v["probe_acc"] <= 1 for v in fc.values())
    # every claim is measured over seeds against a control arm, decided on its interval
    claim = next(c for c in summary["claims"] if c["id"] == "fixed_compute_m4")
    assert claim["value"] == pytest.approx(100 * (fc["4"]["probe_acc"] - fc["2"]["probe_acc"]))
    assert claim["seeds"] == 2 and claim["control"]["values"] == pytest.approx(
        [100 * a for a in fc["2"]["probe_acc_seeds"]]
    )
    for c in summary["claims"]:
        assert c["control"]["name"] and len(c["interval"]) == 2 and c["seeds"] == 2
    assert len(res["mi"]["arms"]["all-pairs/m4"]["loss_estimate_seeds"]) == 2
    keys = {r.get("arm") for r in rows(out)}
    assert {"digits/m2-k32", "digits/m4-k16", "digits/m2-k16"} <= keys
    assert read(out, "config.json")["preset"] == "smoke"
    assert "results in" in capsys.readouterr().out


def test_sigint_then_resume_equals_an_uninterrupted_run(tmp_path):
    args = [
        "--preset",
        "smoke",
        "--experiments",
        "digits",
        "--digits-views",
        "2,4",
        "--digits-fixed-k",
        "0",
        "--digits-steps",
        "60",
        "--checkpoint-every",
        "7",
    ]
    ref = tmp_path / "ref"
    assert main([*args, "--out", str(ref)]) == 0
    cut = tmp_path / "cut"
    t = _interrupt_when(cut / "metrics.jsonl", 3)
    assert main([*args, "--out", str(cut)]) == 130
    t.join()
    assert len(rows(cut)) < len(rows(ref))
    assert main(["--resume", str(cut)]) == 0
    assert (cut / "metrics.jsonl").read_text() == (ref / "metrics.jsonl").read_text()
    for key in ("digits/m2-k32", "digits/m4-k16"):
        a, b = final_weights(ref, key), final_weights(cut, key)
        assert a.keys() == b.keys()
        for k in a:
            assert torch.equal(a[k], b[k]), (key, k)
    assert read(cut, "summary.json")["claims"] == read(ref, "summary.json")["claims"]


@pytest.mark.parametrize(
    "argv, words",
    [
        (["--mi-tau", "0"], "--mi-tau must be > 0"),
        (["--digits-tau", "-1"], "--digits-tau must be > 0"),
        (["--mi-views", "1,2"], "--mi-views must be >= 2"),
        (["--digits-views", "4,8"], "must include 2"),
        (["--digits-budget", "100", "--digits-views", "2,8"], "not divisible by M = 8"),
        (["--mi-methods", "geometric,simclr"], "--mi-methods must be one of"),
        (["--experiments", "images"], "needs --data"),
        (["--preset", "huge"], "invalid choice"),
        (["--digits-mask", "1.5"], "--digits-mask must be <="),
    ],
)
def test_bad_input_exits_2_with_one_line(tmp_path, capsys, argv, words):
    out = tmp_path / "r"
    assert main([*argv, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and words in err, err
    assert not out.exists()


def test_paper_preset_runs_a_few_steps_on_an_image_folder(tmp_path):
    data = write_image_folder(tmp_path / "images")
    out = tmp_path / "run"
    argv = [
        "--preset",
        "paper",
        "--data",
        str(data),
        "--model",
        "resnet18",
        "--img-batch",
        "4",
        "--img-views",
        "3",
    ]
    argv += ["--img-epochs", "1", "--image-size", "16", "--image-load-size", "20", "--img-proj-hidden", "32"]
    argv += ["--img-test-fraction", "0.25", "--img-warmup-epochs", "0.5", "--out", str(out)]
    assert main(argv) == 0
    cfg = read(out, "config.json")
    assert cfg["img_views"] == 3 and cfg["img_method"] == "geometric" and cfg["model"] == "resnet18"
    res = read(out, "summary.json")["results"]["images"]
    assert res["classes"] == ["class0", "class1"]
    assert res["train_images"] == 9 and res["test_images"] == 3
    assert res["steps"] == round(9 / 4)
    assert 0.0 <= res["probe_acc"] <= 1.0
    w = final_weights(out, "images")
    assert any(k.startswith("model.backbone.") for k in w) and any(k.startswith("model.head.") for k in w)
    # the paper preset's own settings: ResNet-50, M = 8, K = 256, LARS at 0.3 x K/256, 128 epochs
    from polyview.train import PRESETS, Config

    paper = Config(**PRESETS["paper"])
    assert (paper.model, paper.img_views, paper.img_batch, paper.img_epochs) == ("resnet50", 8, 256, 128.0)


def test_paper_preset_bad_folder(tmp_path, capsys):
    assert main(["--preset", "paper", "--data", str(tmp_path / "missing"), "--out", str(tmp_path / "r")]) == 2
    assert "does not exist" in capsys.readouterr().err


@pytest.mark.slow
def test_torchrun_two_ranks_match_one_process(tmp_path):
    """2 gloo ranks x K/2 samples == 1 process x K samples: same losses and weights up to float order."""
    train = Path(sys.executable).parent / "train"
    args = ["--trainer", "polyview", "--preset", "smoke", "--experiments", "digits", "--digits-fixed-k", "0"]
    # float32 sums in another order differ by ~1e-7; Adam's early steps amplify that chaotically (to ~1e-4 after
    # 20 steps at M = 4), so the comparison stops at 12 steps
    args += ["--digits-steps", "12", "--device", "cpu"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    one = tmp_path / "one"
    subprocess.run([str(train), *args, "--out", str(one)], check=True, env=env, capture_output=True)
    two = tmp_path / "two"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node",
        "2",
        "--no-python",
    ]
    proc = subprocess.run(
        [*cmd, str(train), *args, "--out", str(two)], env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    r1, r2 = rows(one), rows(two)
    assert len(r1) == len(r2) > 0
    for a, b in zip(r1, r2):
        assert (a["arm"], a["step"]) == (b["arm"], b["step"])
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-5)
    for key in ("digits/m2-k32", "digits/m4-k16"):
        w1, w2 = final_weights(one, key), final_weights(two, key)
        for k in w1:
            # Adam normalises each gradient coordinate: where a gradient is near zero, reduction-order noise can
            # flip a whole step (lr = 1e-3) of that one weight, so compare whole tensors, not single weights
            assert (w2[k] - w1[k]).norm() <= 1e-4 * w1[k].norm(), (key, k)
    assert read(two, "summary.json")["results"]["world_size"] == 2


def test_config_imports_no_torch():
    """``train --help`` needs only the configuration: loading config.py alone must not import torch."""
    code = (
        "import importlib.util, sys; "
        f"spec = importlib.util.spec_from_file_location('pvconfig', {str(Path(__file__).parents[1] / 'src/polyview/config.py')!r}); "
        "mod = importlib.util.module_from_spec(spec); sys.modules['pvconfig'] = mod; spec.loader.exec_module(mod); "
        "assert 'torch' not in sys.modules and 'numpy' not in sys.modules, sorted(sys.modules); "
        "print(len(mod.PRESETS), mod.DESCRIPTION.splitlines()[0])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.startswith("3 ``uv run --package polyview train``")
    from polyview.config import METHODS
    from polyview.losses import METHODS as LOSS_METHODS

    assert METHODS == LOSS_METHODS

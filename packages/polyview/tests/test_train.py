"""The trainer end to end: smoke run, resume after SIGINT, bad input, the paper preset, torchrun."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from paperkit.testing import interrupt_when as _interrupt_when
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
        "fixed_compute_m4_knn",
        "fixed_k_m4",
        "fixed_k_m4_knn",
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
    knn = next(c for c in summary["claims"] if c["id"] == "fixed_compute_m4_knn")
    assert knn["value"] == pytest.approx(100 * (fc["4"]["knn_acc"] - fc["2"]["knn_acc"]))
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


def write_jpeg_folder(root: Path, classes: int = 2, per_class: int = 6, size: int = 24) -> Path:
    """``root/classC/I.jpg``: random RGB JPEGs with a per-class colour signal."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for c in range(classes):
        (root / f"class{c}").mkdir(parents=True)
        for i in range(per_class):
            arr = (rng.random((size, size + 4, 3)) * 255).astype(np.uint8)
            arr[..., c % 3] = 255 if c else 0
            Image.fromarray(arr).save(root / f"class{c}" / f"{i}.jpg", quality=90)
    return root


def paper_argv(data: Path, out: Path, *extra: str) -> list[str]:
    """The paper preset shrunk by overrides: resnet18 at 16 pixels, K = 4 samples x M = 3 views per step."""
    argv = ["--preset", "paper", "--data", str(data), "--model", "resnet18", "--img-batch", "4"]
    argv += ["--img-views", "3", "--img-epochs", "1", "--image-size", "16", "--image-load-size", "20"]
    argv += ["--img-proj-hidden", "32", "--img-test-fraction", "0.25", "--img-warmup-epochs", "0.5"]
    return [*argv, "--img-workers", "0", "--threads", "1", "--out", str(out), *extra]


@pytest.mark.parametrize("views_on, workers", [("workers", "1"), ("device", "0")])
def test_paper_preset_streams_a_jpeg_folder(tmp_path, views_on, workers):
    data = write_jpeg_folder(tmp_path / "images")
    out = tmp_path / "run"
    assert main(paper_argv(data, out, "--img-views-on", views_on, "--img-workers", workers)) == 0
    cfg = read(out, "config.json")
    assert cfg["img_views"] == 3 and cfg["img_method"] == "geometric" and cfg["model"] == "resnet18"
    res = read(out, "summary.json")["results"]["images"]
    assert res["classes"] == ["class0", "class1"]
    assert res["train_images"] == 9 and res["test_images"] == 3
    # 9 // 4 = 2 full global batches per epoch (the last partial batch is dropped), 1 epoch
    assert res["steps"] == res["steps_per_epoch"] == 2 and res["skipped_images"] == 0
    assert res["probe_images"] == 9 and 0.0 <= res["probe_acc"] <= 1.0
    w = final_weights(out, "images")
    assert any(k.startswith("model.backbone.") for k in w) and any(k.startswith("model.head.") for k in w)
    # the checkpoint carries the sampler's position: after 2 steps, the epoch's 2 batches are consumed
    (state,) = (out / "checkpoints").glob("images/step-*/state.pt")
    sampler = torch.load(state, weights_only=True)["sampler"]
    assert (sampler["epoch"], sampler["position"], sampler["global_batch"], sampler["n"]) == (0, 8, 4, 9)
    # the paper preset's own settings: ResNet-50, M = 8, K = 256, LARS at 0.3 x K/256, 128 epochs
    from polyview.config import PRESETS, Config

    paper = Config(**PRESETS["paper"])
    assert (paper.model, paper.img_views, paper.img_batch, paper.img_epochs) == ("resnet50", 8, 256, 128.0)
    assert paper.img_views_on == "workers" and paper.img_workers > 0


def test_paper_preset_resumes_on_the_next_batch(tmp_path):
    """SIGINT mid-epoch, then --resume: the sampler continues where it stopped (same losses and weights as an
    uninterrupted run), over an epoch boundary."""
    data = write_jpeg_folder(tmp_path / "images", per_class=8)  # 12 training images: 3 batches an epoch
    extra = ("--img-epochs", "3", "--checkpoint-every", "1")
    ref = tmp_path / "ref"
    assert main(paper_argv(data, ref, *extra)) == 0
    cut = tmp_path / "cut"
    t = _interrupt_when(cut / "metrics.jsonl", 4)
    assert main(paper_argv(data, cut, *extra)) == 130
    t.join()
    assert len(rows(cut)) < len(rows(ref)) == 9
    assert main(["--resume", str(cut)]) == 0
    assert (cut / "metrics.jsonl").read_text() == (ref / "metrics.jsonl").read_text()
    a, b = final_weights(ref, "images"), final_weights(cut, "images")
    for k in a:
        assert torch.equal(a[k], b[k]), k


def corrupt(image: Path) -> Path:
    image.write_bytes(b"not a jpeg")
    return image.parents[1]


@pytest.mark.parametrize(
    "make, words",
    [
        (lambda root: root / "missing", "no such folder"),
        (lambda root: root.mkdir() or root, "no class folders"),
        (lambda root: write_jpeg_folder(root, classes=1), "only one class"),
        (lambda root: corrupt(write_jpeg_folder(root) / "class1" / "3.jpg"), "cannot read image"),
        (lambda root: write_jpeg_folder(root, per_class=2), "fewer than one global batch"),
    ],
)
def test_paper_preset_bad_folder_one_line_before_training(tmp_path, capsys, make, words):
    data = make(tmp_path / "images")
    out = tmp_path / "r"
    assert main(paper_argv(data, out)) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and words in err, err
    assert not list(out.glob("checkpoints/images*"))  # nothing was trained
    assert not (out / "metrics.jsonl").exists() or not (out / "metrics.jsonl").read_text()


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


def test_help_and_import_load_no_torch():
    from paperkit.testing import assert_help_is_light

    assert "--preset" in assert_help_is_light("polyview.cli")

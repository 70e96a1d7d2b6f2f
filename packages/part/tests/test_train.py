"""The trainer end to end: the smoke run's folder and claims, resume after SIGINT equals an uninterrupted run,
bad input, disjoint splits, the image-folder (paper) path, and the README's results block."""

import json
from pathlib import Path

import pytest
import torch
from paperkit.testing import assert_readme_matches_summary, interrupt_when, write_image_folder
from part.data import DigitScenes, Signals, glyph_split, split_generator
from part.train import main
from safetensors.torch import load_file

FAST = ["--preset", "smoke"]


def read(folder: Path, name: str):
    return json.loads((folder / name).read_text())


def test_smoke_run_writes_the_run_folder_and_claims(tmp_path, capsys):
    out = tmp_path / "run"
    assert main([*FAST, "--out", str(out)]) == 0
    summary = read(out, "summary.json")
    ids = {c["id"] for c in summary["claims"]}
    assert {"images_gate_pretext", "images_gate_antisym", "series_gate_pretext", "series_gate_antisym"} <= ids
    for m, tasks in (("images", ("box", "class")), ("series", ("onset", "forecast", "class"))):
        for t in tasks:
            for other in ("random", "mae", "droppos"):
                assert f"{m}_{t}_part_vs_{other}" in ids
    for c in summary["claims"]:
        assert c["seeds"] == 2 and c["control"] is not None and len(c["values"]) == 2
    box = summary["results"]["metrics"]["images"]["random"]["box"]["values"]
    assert all(0 < v < 1 for v in box)
    assert (out / "part.png").is_file()
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert {r["arm"] for r in rows} >= {"images/part/s0", "series/mae/s1", "series/droppos/s0"}
    assert all("floor_ratio" in r for r in rows if "/part/" in r["arm"])
    assert "results in" in capsys.readouterr().out


def weights(folder: Path, key: str) -> dict:
    (path,) = (folder / "checkpoints").glob(f"{key.replace('/', '--')}/step-*/weights.safetensors")
    return load_file(str(path))


def test_sigint_then_resume_equals_an_uninterrupted_run(tmp_path):
    args = [*FAST, "--modalities", "series", "--arms", "part,mae", "--seeds", "1", "--steps", "40"]
    ref, cut = tmp_path / "ref", tmp_path / "cut"
    assert main([*args, "--out", str(ref)]) == 0
    t = interrupt_when(cut / "metrics.jsonl", 12)
    assert main([*args, "--out", str(cut)]) == 130
    t.join()
    assert len((cut / "metrics.jsonl").read_text().splitlines()) < len(
        (ref / "metrics.jsonl").read_text().splitlines()
    )
    assert main(["--resume", str(cut)]) == 0
    assert (cut / "metrics.jsonl").read_text() == (ref / "metrics.jsonl").read_text()
    for key in ("series/part/s0", "series/mae/s0"):
        a, b = weights(ref, key), weights(cut, key)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert read(cut, "summary.json")["claims"] == read(ref, "summary.json")["claims"]


@pytest.mark.parametrize(
    "argv, words",
    [
        (["--lr", "-1"], "--lr must be > 0"),
        (["--arms", "part,simclr"], "--arms must be one of"),
        (["--modalities", "folder"], "needs --data"),
        (["--image-size", "30", "--patch", "8"], "not a multiple of --patch"),
        (["--part-scale", "2,1"], "low <= high"),
        (["--dim", "18"], "divisible"),
    ],
)
def test_bad_input_exits_2_with_one_line(tmp_path, capsys, argv, words):
    out = tmp_path / "r"
    assert main([*FAST, *argv, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and words in err, err
    assert not out.exists()


def test_splits_are_disjoint():
    s = glyph_split()
    sets = {k: set(v.tolist()) for k, v in s.items()}
    assert (
        not (sets["train"] & sets["val"])
        and not (sets["train"] & sets["test"])
        and not (sets["val"] & sets["test"])
    )
    assert len(sets["train"] | sets["val"] | sets["test"]) == 1797
    scenes = DigitScenes(16)
    for split in ("train", "val", "test"):
        d = scenes.sample(50, split, split_generator(0, split))
        assert set(d["glyph"].tolist()) <= sets[split]
    sig = Signals(64, 8)
    a, b = (sig.sample(20, sp, split_generator(0, sp))["x"] for sp in ("train", "test"))
    assert torch.cdist(a.flatten(1), b.flatten(1)).min() > 1.0  # no test series repeats a training one
    pool = sig.sample(20, "train", split_generator(0, "train", 1))["x"]
    assert not torch.allclose(pool, a)


def test_image_folder_path_pretrains_and_probes(tmp_path):
    data = write_image_folder(tmp_path / "images", classes=2, per_class=8, size=16)
    out = tmp_path / "run"
    argv = [
        "--preset",
        "smoke",
        "--modalities",
        "folder",
        "--data",
        str(data),
        "--arms",
        "part,random",
        "--image-size",
        "16",
        "--patch",
        "4",
        "--seeds",
        "1",
        "--out",
        str(out),
    ]
    assert main(argv) == 0
    summary = read(out, "summary.json")
    assert {c["id"] for c in summary["claims"]} >= {"folder_gate_pretext", "folder_class_part_vs_random"}


def test_paper_preset_runs_the_reference_recipe_at_toy_size(tmp_path):
    """The paper preset's v3 sampling (scale 0.5-2, aspect), 4-channel targets and pairwise head, shrunk."""
    data = write_image_folder(tmp_path / "images", classes=2, per_class=8, size=16)
    out = tmp_path / "run"
    argv = [
        "--preset",
        "paper",
        "--data",
        str(data),
        "--dim",
        "16",
        "--depth",
        "1",
        "--heads",
        "2",
        "--image-size",
        "16",
        "--patch",
        "4",
        "--steps",
        "3",
        "--batch",
        "4",
        "--part-pairs",
        "20",
        "--out",
        str(out),
    ]
    assert main(argv) == 0
    assert read(out, "config.json")["part_log_scale"] is True
    assert {c["id"] for c in read(out, "summary.json")["claims"]} == {
        "folder_gate_pretext",
        "folder_gate_antisym",
    }


def test_a_streamed_folder_resumes_mid_epoch_on_the_next_batch(tmp_path):
    """The folder is streamed (paperkit.streaming): the sampler's position is in the checkpoint, so a run
    interrupted mid-epoch continues on the very next batch and ends with the uninterrupted run's weights."""
    data = write_image_folder(tmp_path / "images", classes=2, per_class=10, size=16)  # 16 train images
    args = [*FAST, "--modalities", "folder", "--data", str(data), "--arms", "part", "--seeds", "1"]
    args += ["--image-size", "16", "--patch", "4", "--batch", "4", "--steps", "30", "--workers", "0"]
    ref, cut = tmp_path / "ref", tmp_path / "cut"
    assert main([*args, "--out", str(ref)]) == 0
    t = interrupt_when(cut / "metrics.jsonl", 6)  # step 6 of 30: epoch 1, mid-way (4 batches per epoch)
    assert main([*args, "--out", str(cut)]) == 130
    t.join()
    state = torch.load(
        next((cut / "checkpoints").glob("folder--part--s0/step-*/state.pt")), weights_only=False
    )
    assert state["loader"]["position"] % 16 != 0 or state["loader"]["epoch"] == 0  # saved inside an epoch
    assert main(["--resume", str(cut)]) == 0
    a, b = weights(ref, "folder/part/s0"), weights(cut, "folder/part/s0")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert read(cut, "summary.json")["claims"] == read(ref, "summary.json")["claims"]


def test_readme_matches_the_default_summary():
    assert_readme_matches_summary(Path(__file__).parents[1])


def test_help_and_import_load_no_torch():
    from paperkit.testing import assert_help_is_light

    assert "--preset" in assert_help_is_light("part.cli")

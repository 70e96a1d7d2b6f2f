"""Waterbirds-digits: disjoint splits, exact correlation, balanced evaluation groups; group metrics; the
Waterbirds metadata layout read from a tiny folder written here."""

import numpy as np
import pytest
import torch
from ewc_ssl import balanced_groups, group_accuracy, metadata_image_list, read_metadata, waterbirds_digits
from ewc_ssl.data import digit_splits, texture
from paperkit.config import ConfigError


def test_splits_are_disjoint_and_reproducible():
    fr = {"pretrain": 0.35, "train": 0.3, "val": 0.15, "test": 0.2}
    a, b = digit_splits(fr, seed=3), digit_splits(fr, seed=3)
    sets = [set(v.tolist()) for v in a.values()]
    for i in range(len(sets)):
        for j in range(i + 1, len(sets)):
            assert not sets[i] & sets[j]
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert sum(len(s) for s in sets) <= 1797
    with pytest.raises(ConfigError, match="sum"):
        digit_splits({"a": 0.7, "b": 0.6}, seed=0)


def test_training_correlation_is_exact_and_evaluation_is_group_balanced():
    idx = digit_splits({"train": 0.3, "val": 0.15}, seed=0)
    tr = waterbirds_digits(idx["train"], correlation=0.95, seed=1)
    for label in (0, 1):
        m = tr.y == label
        agree = int((tr.a[m] == label).sum())
        assert agree == round(0.95 * int(m.sum()))
    va = balanced_groups(idx["val"], seed=2)
    counts = torch.bincount(va.group, minlength=4)
    assert counts[0] == counts[1] and counts[2] == counts[3]
    assert tr.x.shape[1] == 256 and float(tr.x.min()) >= 0 and float(tr.x.max()) <= 1
    # the label is the digit's, the attribute only changes the background
    assert torch.equal(va.y, (va.digit >= 5).long())


def test_textures_differ_by_kind():
    rng = np.random.default_rng(0)
    t = texture(np.array([0, 1]), rng)
    stripes, checker = t
    assert (stripes == stripes[:, :1]).all()  # horizontal stripes: constant along rows
    assert not (checker == checker[:, :1]).all()


def test_group_accuracy_closed_form():
    y = torch.tensor([0, 0, 0, 1, 1, 1])
    a = torch.tensor([0, 0, 1, 0, 1, 1])
    pred = torch.tensor([0, 1, 0, 0, 1, 1])
    r = group_accuracy(pred, y, 2 * y + a)
    assert r["per_group"] == [0.5, 1.0, 0.0, 1.0]
    assert r["worst"] == 0.0 and r["average"] == pytest.approx(4 / 6)
    stacked = group_accuracy(torch.stack([pred, y]), y, 2 * y + a)
    assert stacked["worst"] == [0.0, 1.0]


def write_waterbirds(root, n=8):
    from PIL import Image

    (root / "imgs").mkdir(parents=True)
    lines = ["img_id,img_filename,y,split,place"]
    for i in range(n):
        arr = (np.random.default_rng(i).random((12, 12, 3)) * 255).astype(np.uint8)
        Image.fromarray(arr).save(root / "imgs" / f"{i}.jpg")
        lines.append(f"{i},imgs/{i}.jpg,{i % 2},{i % 3},{(i // 2) % 2}")
    (root / "metadata.csv").write_text("\n".join(lines) + "\n")
    return root


def test_waterbirds_metadata_layout(tmp_path):
    root = write_waterbirds(tmp_path / "wb")
    rows = read_metadata(root, "train")
    assert [r.path.name for r in rows] == ["0.jpg", "3.jpg", "6.jpg"]
    from paperkit.streaming import StreamingImages

    images = metadata_image_list(root, "val")
    x, group, ok = StreamingImages(images, size=16)[0]  # row 1: y = 1, place = 0
    assert ok and x.shape == (3, 16, 16) and x.dtype == torch.uint8 and group == 2
    with pytest.raises(ConfigError, match="no metadata.csv"):
        read_metadata(tmp_path, "train")
    (root / "metadata.csv").write_text("img_filename,y,split\nimgs/0.jpg,1,0\n")
    with pytest.raises(ConfigError, match="no column 'place'"):
        read_metadata(root, "train")

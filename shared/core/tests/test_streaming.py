"""The streaming image pipeline: disjoint ranks, mid-epoch resume, bad folders, corrupt images, seeded views."""

import numpy as np
import pytest
import torch
from paperkit.config import ConfigError
from paperkit.streaming import ImageList, ResumableSampler, StreamingImages, streaming_loader
from paperkit.testing import write_image_folder


def _epoch(sampler):
    return list(iter(sampler))


@pytest.mark.parametrize("world", [2, 3])
def test_ranks_are_disjoint_and_their_union_is_the_epoch(world):
    n, b = 103, 4
    per_rank = [
        _epoch(ResumableSampler(n, batch_size=b, rank=r, world_size=world, seed=7)) for r in range(world)
    ]
    flat = [i for part in per_rank for i in part]
    assert len(flat) == len(set(flat))  # disjoint
    g = b * world
    full = ResumableSampler(n, batch_size=g, seed=7).permutation(0)[: (n // g) * g].tolist()
    assert sorted(flat) == sorted(full)  # the union is the epoch (less the last partial global batch)
    # global batch k of the one-process order is exactly the ranks' k-th batches, concatenated
    for k in range(n // g):
        assert sum((part[k * b : (k + 1) * b] for part in per_rank), []) == full[k * g : (k + 1) * g]


def test_epochs_differ_and_depend_only_on_seed_and_epoch():
    s = ResumableSampler(50, batch_size=5, seed=1)
    assert not torch.equal(s.permutation(0), s.permutation(1))
    assert torch.equal(s.permutation(3), ResumableSampler(50, batch_size=5, seed=1).permutation(3))


def _loader(images, world=1, rank=0, batch=2):
    return streaming_loader(images, batch_size=batch, size=8, seed=3, rank=rank, world_size=world)


def test_an_interrupted_epoch_resumes_on_the_next_batch(tmp_path):
    images = ImageList.from_folder(write_image_folder(tmp_path / "d", classes=3, per_class=6, size=12))
    full = [y.tolist() for _, y in _loader(images)] + [y.tolist() for _, y in _loader(images)]
    # the same, interrupted after 3 batches: the state goes into a checkpoint, a new loader continues
    first = _loader(images)
    seen = []
    for k, (_, y) in enumerate(first):
        seen.append(y.tolist())
        if k == 2:
            break
    state = first.state_dict()
    assert state["position"] == 3 * 2 and state["epoch"] == 0
    again = _loader(images)
    again.load_state_dict(state)
    rest = [y.tolist() for _, y in again]
    assert seen + rest == full[: len(_loader(images))] and again.epoch == 1
    # indices, not only labels: the resumed sampler yields exactly the remaining part of the permutation
    s = ResumableSampler(len(images), batch_size=2, seed=3)
    s.load_state_dict(state)
    assert list(iter(s)) == s.permutation(0)[6 : (len(images) // 2) * 2].tolist()


def test_resume_at_another_world_size_with_the_same_global_batch():
    one = ResumableSampler(40, batch_size=4, seed=2)
    one.position = 8
    state = one.state_dict()
    ranks = []
    for r in range(2):
        s = ResumableSampler(40, batch_size=2, rank=r, world_size=2, seed=2)
        s.load_state_dict(state)
        ranks.append(list(iter(s)))
    assert sorted(ranks[0] + ranks[1]) == sorted(list(iter(one)))
    other = ResumableSampler(40, batch_size=3, rank=0, world_size=2, seed=2)
    with pytest.raises(ConfigError, match="global batch"):
        other.load_state_dict(state)


def test_bad_folders_are_one_line_errors(tmp_path):
    with pytest.raises(ConfigError, match="no such folder"):
        ImageList.from_folder(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="no class folders"):
        ImageList.from_folder(tmp_path / "empty")
    one = write_image_folder(tmp_path / "one", classes=1, per_class=2)
    with pytest.raises(ConfigError, match="only one class"):
        ImageList.from_folder(one)
    bad = write_image_folder(tmp_path / "bad", classes=2, per_class=3)
    (bad / "class1" / "2.png").write_bytes(b"not a png at all")
    with pytest.raises(ConfigError, match="cannot read image .*2.png") as e:
        ImageList.from_folder(bad).check()
    assert "\n" not in str(e.value)
    (tmp_path / "noimg" / "a").mkdir(parents=True)
    (tmp_path / "noimg" / "b").mkdir(parents=True)
    with pytest.raises(ConfigError, match="holds no images"):
        ImageList.from_folder(tmp_path / "noimg")


def test_a_corrupt_image_mid_epoch_is_skipped_and_counted(tmp_path):
    root = write_image_folder(tmp_path / "d", classes=2, per_class=4, size=10)
    images = ImageList.from_folder(root)
    (root / "class0" / "1.png").write_bytes(b"\x89PNG broken")
    loader = _loader(images, batch=4)
    got = sum(len(y) for _, y in loader)
    assert loader.skipped == 1 and got == 7


def test_file_list_and_split(tmp_path):
    root = write_image_folder(tmp_path / "d", classes=2, per_class=5)
    lines = [f"{p.relative_to(root)} {p.parent.name}" for p in sorted(root.rglob("*.png"))]
    (root / "list.txt").write_text("# path label\n" + "\n".join(lines) + "\n")
    images = ImageList.open(root / "list.txt")
    assert len(images) == 10 and images.classes == ["class0", "class1"]
    train, test = images.split(0.3, seed=0)
    assert len(test) == 3 and not set(train.paths.tolist()) & set(test.paths.tolist())
    (root / "bad.txt").write_text("only-a-path\n")
    with pytest.raises(ConfigError, match="bad.txt:1"):
        ImageList.from_file(root / "bad.txt")


def test_views_are_seeded_per_sample_and_differ_between_views(tmp_path):
    images = ImageList.from_folder(write_image_folder(tmp_path / "d", classes=2, per_class=2, size=24))
    ds = StreamingImages(images, size=16, views=3, seed=5)
    a, label, ok = ds[1]
    b, _, _ = StreamingImages(images, size=16, views=3, seed=5)[1]
    assert ok and a.shape == (3, 3, 16, 16) and a.dtype == torch.float32 and label == images.labels[1]
    assert torch.equal(a, b)  # the same sample, seed and epoch: the same views, on any worker or rank
    assert not torch.equal(a[0], a[1])
    ds.set_epoch(1)
    assert not torch.equal(ds[1][0], a)
    plain = StreamingImages(images, size=16)[0][0]
    assert plain.dtype == torch.uint8 and plain.shape == (3, 16, 16)


def test_workers_give_the_same_batches_as_the_main_process(tmp_path):
    images = ImageList.from_folder(write_image_folder(tmp_path / "d", classes=2, per_class=6, size=12))
    main = [x for x, _ in streaming_loader(images, batch_size=3, size=8, views=2, seed=1)]
    workers = [x for x, _ in streaming_loader(images, batch_size=3, size=8, views=2, seed=1, workers=2)]
    assert len(main) == len(workers) == 4
    for a, b in zip(main, workers):
        assert torch.equal(a, b)
    assert np.isfinite(torch.stack(main).numpy()).all()


def test_eval_loader_sees_every_readable_image_once_in_order_with_the_last_partial_batch(tmp_path):
    from paperkit.streaming import eval_loader

    images = ImageList.from_folder(write_image_folder(tmp_path / "d", classes=2, per_class=5))  # 10 images
    (tmp_path / "d" / "class1" / "broken.png").write_bytes(b"not an image")
    images = ImageList.from_folder(tmp_path / "d")  # 11, one unreadable
    batches = list(eval_loader(images, batch_size=4, size=8))
    assert [len(x) for x, _, _ in batches] == [4, 4, 2] and sum(s for _, _, s in batches) == 1
    labels = torch.cat([y for _, y, _ in batches])
    readable = [i for i in range(len(images)) if "broken" not in images.path(i)]
    assert labels.tolist() == images.labels[readable].tolist()
    assert batches[0][0].dtype == torch.uint8 and batches[0][0].shape[1:] == (3, 8, 8)

"""Pairs balanced between true and false correspondence, over disjoint per-item splits."""

import numpy as np
import pytest
import torch
from affective_music.pairs import fixed_pairs, sample_pairs, split_items, stratified_split


def test_split_items_is_a_disjoint_cover():
    s = split_items(101, (0.6, 0.2, 0.2), 0)
    allidx = np.concatenate([s["train"], s["val"], s["test"]])
    assert sorted(allidx.tolist()) == list(range(101))
    assert len(s["train"]) == 61 and len(s["val"]) == 20


def test_stratified_split_keeps_every_label_in_every_split():
    labels = np.array([0] * 10 + [1] * 5 + [2] * 30)
    s = stratified_split(labels, (0.6, 0.2, 0.2), 3)
    for part in s.values():
        assert set(labels[part]) == {0, 1, 2}
    assert not (set(s["train"]) & set(s["test"])) and not (set(s["val"]) & set(s["test"]))


def test_bad_fractions():
    with pytest.raises(ValueError, match="sum"):
        split_items(10, (0.5, 0.2, 0.2), 0)


def test_pairs_targets_balance_and_pools():
    g = torch.Generator().manual_seed(0)
    cl, il = torch.tensor([0, 0, 1, 2, 2, 1]), torch.tensor([2, 1, 0, 0, 1, 2, 2, 1])
    cpool, ipool = torch.tensor([0, 2, 3]), torch.tensor([0, 1, 2, 4])
    a, v, y = sample_pairs(cl, il, cpool, ipool, 4000, g)
    assert set(a.tolist()) <= {0, 2, 3} and set(v.tolist()) <= {0, 1, 2, 4}
    assert torch.equal(y, (cl[a] == il[v]).long())
    assert abs(y.float().mean().item() - 0.5) < 0.03
    false = y == 0
    # a false pair's image label is uniform over the two other labels
    d = (il[v[false]] - cl[a[false]]) % 3
    assert abs((d == 1).float().mean().item() - 0.5) < 0.04


def test_fixed_pairs_are_reproducible_and_missing_label_is_an_error():
    cl, il = torch.tensor([0, 1, 2]), torch.tensor([0, 1, 2, 0])
    p1, p2 = (
        fixed_pairs(cl, il, [0, 1, 2], [0, 1, 2, 3], 50, 7),
        fixed_pairs(cl, il, [0, 1, 2], [0, 1, 2, 3], 50, 7),
    )
    assert all(torch.equal(x, y) for x, y in zip(p1, p2))
    with pytest.raises(ValueError, match="label 2"):
        fixed_pairs(cl, il, [0, 1, 2], [0, 1], 50, 7)

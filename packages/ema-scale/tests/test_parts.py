"""The experiments' building blocks: the parabola simulator, batched seeds, data streams, augmentations."""

import pytest
import torch
from ema_scale.digits import (
    SeedBatchNorm,
    SeedLinear,
    augment,
    knn_loo_accuracy,
    on_canvas,
    seed_mlp,
    set_ghost,
    stream_indices,
)
from ema_scale.images import augment_images
from ema_scale.parabola import simulate
from torch import nn


@pytest.mark.parametrize("seed", range(5))
def test_parabola_arms_agree_at_kappa_1_and_the_rule_tracks_it(seed):
    """A learned direction, checked on 5 seeds at 1 and 2 threads: the ratio was 0.0038 on every one (float64,
    elementwise updates: the thread count does not change it), so the bound 0.1 has a margin of 25x."""
    r = simulate((1, 4), seeds=128, base_steps=2048, coupling=0.5, seed=seed)
    for a in ("none", "linear"):
        assert torch.equal(r.mean[a][1], r.mean["exp"][1])
    assert r.gap["exp"][4] < 0.1 * r.gap["none"][4]
    assert r.gap["exp"][1] == 0.0


def test_parabola_ema_tracks_sgd_stationary_mean():
    r = simulate((1,), seeds=512, base_steps=8192, rho=0.9, lr=0.05, coupling=0.0, noise=0.0)
    assert abs(float(r.mean["exp"][1][-1])) < 1e-6  # without noise theta and zeta go to the minimum at 0


def test_seed_linear_equals_independent_linears():
    lin = SeedLinear(3, 5, 4, seed=1)
    x = torch.randn(3, 7, 5)
    for s in range(3):
        ref = nn.Linear(5, 4)
        ref.weight.data, ref.bias.data = lin.weight[s].T.clone(), lin.bias[s, 0].clone()
        assert torch.allclose(lin(x)[s], ref(x[s]), atol=1e-6)


def test_seeds_are_independent_of_how_many_are_batched():
    a, b = seed_mlp(2, (4, 8, 3), seed=5), seed_mlp(4, (4, 8, 3), seed=5)
    assert torch.equal(a[0].weight, b[0].weight[:2])


def test_stream_common_random_numbers():
    """A batch of kappa*B is exactly the kappa base batches it replaces, across epoch boundaries."""
    n = 50
    base = torch.cat([stream_indices(0, n, s, 8, 2) for s in range(0, 160, 8)], dim=1)
    big = torch.cat([stream_indices(0, n, s, 32, 2) for s in range(0, 160, 32)], dim=1)
    assert torch.equal(base, big)
    for e in range(3):
        assert sorted(base[0, e * n : (e + 1) * n].tolist()) == list(range(n))


def test_augment_is_deterministic_and_keeps_shape():
    x = torch.rand(2, 6, 64)
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    a, b = augment(x, g1), augment(x, g2)
    assert a.shape == x.shape and torch.equal(a, b)
    plain = augment(x, torch.Generator().manual_seed(0), shift=0, noise=0.0, erase=0.0)
    assert torch.equal(plain, x)


def test_augment_images_shapes_and_range():
    x = torch.randint(0, 256, (1, 4, 3, 20, 20), dtype=torch.uint8)
    v = augment_images(x, torch.Generator().manual_seed(0), size=16)
    assert v.shape == (1, 4, 3, 16, 16) and torch.isfinite(v).all()
    assert torch.equal(v, augment_images(x, torch.Generator().manual_seed(0), size=16))


def test_ghost_batchnorm_equals_base_batches_normalised_apart():
    """A batch of kappa base batches, two views each (view-major rows), normalised in ghost batches equals each
    base batch (both of its views) normalised on its own: the per-sample loss does not depend on kappa."""
    torch.manual_seed(0)
    bn = SeedBatchNorm(3, 5)
    with torch.no_grad():
        bn.weight.uniform_(0.5, 2.0)
        bn.bias.normal_()
    base, kappa = 4, 3
    v1, v2 = torch.randn(3, kappa * base, 5), torch.randn(3, kappa * base, 5)
    set_ghost(bn, (2, kappa))
    out = bn(torch.cat([v1, v2], 1))
    set_ghost(bn, None)
    for g in range(kappa):
        rows = slice(g * base, (g + 1) * base)
        ref = bn(torch.cat([v1[:, rows], v2[:, rows]], 1))
        torch.testing.assert_close(out[:, rows], ref[:, :base])
        torch.testing.assert_close(out[:, kappa * base :][:, rows], ref[:, base:])
    whole = bn(torch.cat([v1, v2], 1))
    set_ghost(bn, (2, 1))  # one group: the whole batch
    torch.testing.assert_close(bn(torch.cat([v1, v2], 1)), whole)
    assert not torch.allclose(out, whole)


def test_knn_leave_one_out_equals_a_faiss_reference():
    """Per seed, each point is voted on by its k nearest *other* points (faiss exact search, self dropped)."""
    import faiss
    import numpy as np

    g = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 4, (120,), generator=g)
    feats = torch.randn(2, 120, 6, generator=g) + 1.5 * torch.nn.functional.one_hot(labels, 6)[None].float()
    got = knn_loo_accuracy(feats, labels, k=5)
    for s in range(2):
        x = feats[s].numpy().astype(np.float32).copy()
        faiss.normalize_L2(x)
        index = faiss.IndexFlatIP(6)
        index.add(x)
        _, nn_idx = index.search(x, 6)
        y = labels.numpy()
        hits = [
            np.bincount(y[[j for j in nn_idx[i] if j != i][:5]], minlength=4).argmax() == y[i]
            for i in range(120)
        ]
        assert got[s] == pytest.approx(float(np.mean(hits)))
    assert 0.5 < got[0] < 1.0


def test_digits_on_a_canvas_keep_every_pixel():
    x = torch.rand(10, 64)
    data = {"x_train": x, "x_test": x[:3], "y_train": torch.zeros(10), "y_test": torch.zeros(3)}
    out = on_canvas(data, 12, seed=0)
    assert out["x_train"].shape == (10, 144) and out["x_test"].shape == (3, 144)
    assert torch.allclose(out["x_train"].sum(1), x.sum(1)) and torch.equal(out["y_train"], data["y_train"])
    img = out["x_train"].reshape(10, 12, 12)
    nz = (img > 0).nonzero()
    assert (nz[:, 1:].max(0).values - nz[:, 1:].min(0).values <= 11).all()
    assert torch.equal(
        augment(out["x_train"], torch.Generator().manual_seed(0), shift=0, noise=0.0, erase=0.0),
        out["x_train"],
    )


def test_image_lr_schedule_warms_up_then_decays_in_samples():
    from ema_scale.stream import lr_factor

    assert lr_factor(0, 4, 8, 40) == 0.5 and lr_factor(4, 4, 8, 40) == 1.0
    assert lr_factor(8, 4, 8, 40) == 1.0 and lr_factor(24, 4, 8, 40) == pytest.approx(0.5)
    assert lr_factor(36, 4, 8, 40) < 0.1
    # the same samples give the same factor at any batch (kappa): one step of 8 ends where two of 4 do
    assert lr_factor(16, 8, 8, 40) == lr_factor(16, 4, 8, 40)


def test_knn_evaluation_keeps_torch_threads():
    """faiss's omp_set_num_threads(1) inside the core's kNN sets the OpenMP pool torch shares; the digits loop
    restores it, so a run at --threads 2 stays at 2 threads after its first evaluation."""
    from ema_scale.digits import _knn

    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        x, y = torch.randn(30, 4), torch.arange(30) % 3
        assert 0.0 <= _knn(x, y, x, y) <= 1.0
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)

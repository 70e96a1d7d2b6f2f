"""Views, encoders and the MI closed form."""

import math

import pytest
import torch
from polyview import SeedMLP, cnn_model, image_views, mlp_model, timm_model, vector_views
from polyview.mi import gaussian_views, ovr_bound, spearman, true_ovr_mi


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_image_views_shapes_range_and_determinism():
    x = (torch.rand(5, 3, 20, 20, generator=gen()) * 255).to(torch.uint8)
    v = image_views(x, 4, gen(1), size=12)
    assert v.shape == (5, 4, 3, 12, 12) and v.dtype == torch.float32
    assert v.min() >= 0 and v.max() <= 1
    torch.testing.assert_close(v, image_views(x, 4, gen(1), size=12))
    assert not torch.allclose(v[:, 0], v[:, 1])  # the views of one sample differ
    assert not torch.allclose(v, image_views(x, 4, gen(2), size=12))
    norm = image_views(x, 2, gen(1), size=12, normalize=((0.5, 0.5, 0.5), (0.25, 0.25, 0.25)))
    torch.testing.assert_close(norm * 0.25 + 0.5, image_views(x, 2, gen(1), size=12))


def test_image_views_without_randomness_is_the_identity():
    x = torch.rand(3, 3, 16, 16, generator=gen())
    v = image_views(x, 2, gen(), scale=(1, 1), ratio=(1, 1), flip=0, jitter=0, gray=0, blur=0)
    torch.testing.assert_close(v, x[:, None].expand(3, 2, 3, 16, 16), atol=1e-5, rtol=0)
    flipped = image_views(x, 1, gen(), scale=(1, 1), ratio=(1, 1), flip=1, jitter=0, gray=0, blur=0)
    torch.testing.assert_close(flipped[:, 0], x.flip(-1), atol=1e-5, rtol=0)


def test_grayscale_and_blur():
    x = torch.rand(4, 3, 16, 16, generator=gen())
    g = image_views(x, 2, gen(), scale=(1, 1), ratio=(1, 1), flip=0, jitter=0, gray=1.0, blur=0)
    torch.testing.assert_close(g[:, :, 0], g[:, :, 1])
    const = torch.full((2, 1, 16, 16), 0.3)
    b = image_views(const, 3, gen(), scale=(1, 1), ratio=(1, 1), flip=0, jitter=0, blur=1.0)
    torch.testing.assert_close(b, torch.full_like(b, 0.3))  # blur keeps a constant image
    sharp = image_views(x, 1, gen(3), scale=(1, 1), ratio=(1, 1), flip=0, jitter=0, gray=0, blur=0)
    soft = image_views(
        x, 1, gen(3), scale=(1, 1), ratio=(1, 1), flip=0, jitter=0, gray=0, blur=1.0, blur_sigma=(2, 2)
    )
    assert soft.std() < 0.8 * sharp.std()  # blur lowers the variance of noise images


def test_vector_views():
    x = torch.randn(6, 10, generator=gen())
    torch.testing.assert_close(vector_views(x, 3, gen(), noise=0, mask=0), x[:, None].expand(6, 3, 10))
    v = vector_views(torch.ones(200, 50), 4, gen(), noise=0, mask=0.25)
    assert v.shape == (200, 4, 50)
    assert (v == 0).float().mean().item() == pytest.approx(0.25, abs=0.01)
    n = vector_views(torch.zeros(500, 20), 2, gen(), noise=0.5, mask=0)
    assert n.std().item() == pytest.approx(0.5, rel=0.05)
    with pytest.raises(ValueError, match=r"\[K, D\]"):
        vector_views(torch.zeros(2, 3, 4), 2)
    with pytest.raises(ValueError, match="mask"):
        vector_views(x, 2, mask=1.0)
    with pytest.raises(ValueError, match="number of views"):
        image_views(torch.zeros(2, 3, 8, 8), 0)
    with pytest.raises(ValueError, match=r"\[K, C, H, W\]"):
        image_views(torch.zeros(3, 8, 8), 2)


def test_encoders_keep_the_view_dims():
    torch.manual_seed(0)
    mlp = mlp_model(64, hidden=32, feat_dim=16, proj_dim=8)
    x = torch.randn(5, 3, 64)
    assert mlp(x).shape == (5, 3, 8) and mlp.encode(x).shape == (5, 3, 16)
    torch.testing.assert_close(mlp(x)[2, 1], mlp(x[2, 1][None])[0])
    cnn = cnn_model(3, width=8, feat_dim=16, proj_dim=8).eval()
    assert cnn(torch.randn(2, 4, 3, 16, 16)).shape == (2, 4, 8)


def test_timm_model_by_name():
    net = timm_model("resnet18", proj_hidden=64, proj_dim=32).eval()
    imgs = torch.randn(2, 3, 3, 32, 32)
    assert net(imgs).shape == (2, 3, 32)
    assert net.encode(imgs).shape == (2, 3, 512)
    with pytest.raises(ValueError, match="timm has no model"):
        timm_model("no_such_net_v9")


def test_seed_mlp_batches_independent_seeds():
    a, b = SeedMLP(3, (6, 8, 4), (8, 5), seed=1), SeedMLP(5, (6, 8, 4), (8, 5), seed=1)
    for (name, pa), (_, pb) in zip(a.named_parameters(), b.named_parameters()):
        torch.testing.assert_close(pa, pb[:3], msg=name)  # seed s does not depend on how many are batched
    x = torch.randn(3, 7, 2, 6)
    out = a(x)
    assert out.shape == (3, 7, 2, 5) and a.encode(x).shape == (3, 7, 2, 4)
    one = SeedMLP(1, (6, 8, 4), (8, 5), seed=1)
    torch.testing.assert_close(out[0], one(x[:1])[0])


def test_true_mi_closed_form_matches_gaussian_determinants():
    """I(v_a; V_rest) = 1/2 log(det S_a det S_rest / det S_all) per dimension for jointly Gaussian views."""
    sigma = 0.7
    for m in (2, 3, 5):
        cov = torch.ones(m, m, dtype=torch.float64) + sigma**2 * torch.eye(m, dtype=torch.float64)
        mi = 0.5 * (torch.logdet(cov[:1, :1]) + torch.logdet(cov[1:, 1:]) - torch.logdet(cov)).item()
        assert true_ovr_mi(3, sigma, m) == pytest.approx(3 * mi, rel=1e-12)
    values = [true_ovr_mi(1, sigma, m) for m in range(2, 30)]
    assert all(b > a for a, b in zip(values, values[1:]))
    assert values[-1] < 0.5 * math.log(1 + 1 / sigma**2)  # bounded by I(v; x)
    with pytest.raises(ValueError):
        true_ovr_mi(1, sigma, 1)


def test_ovr_bound_of_the_ideal_critic_approaches_the_truth():
    """With the embedding x-hat itself (views scaled), the one-vs-rest bound is below the truth and sensible."""
    v = gaussian_views(256, 8, 1, 0.5, gen())
    est = ovr_bound(torch.cat([v, torch.ones_like(v)], -1), 0.05)
    assert 0 < est < true_ovr_mi(1, 0.5, 8) + 0.05
    assert spearman([1, 2, 3, 4], [0.1, 0.3, 0.2, 0.5]) == pytest.approx(0.8)


def test_the_readme_example_runs():
    """The README's ten-line example, executed on a tiny loader: it runs, and its loss is the Geometric PVC of
    the model's projections (recomputed here from the last batch's views)."""
    import re
    from pathlib import Path

    readme = (Path(__file__).parents[1] / "README.md").read_text()
    code = re.search(r"### In your own training loop\n\n```python\n(.*?)```", readme, re.S).group(1)
    code = code.replace("size=96", "size=16")  # smaller crops keep the test fast
    code = code.replace("opt.step()", "opt.step()\n    seen.append((loss.item(), views))")
    torch.manual_seed(0)
    seen: list = []
    scope = {"loader": [(torch.rand(4, 3, 20, 20, generator=gen(1)), None)] * 2, "seen": seen}
    exec(code, scope)
    assert len(seen) == 2 and all(math.isfinite(v) for v, _ in seen)
    assert seen[-1][1].shape == (4, 4, 3, 16, 16)
    model = scope["model"]
    from polyview import pvc_loss

    assert pvc_loss(model(seen[-1][1]), tau=0.1).item() != seen[-1][0]  # the step changed the model

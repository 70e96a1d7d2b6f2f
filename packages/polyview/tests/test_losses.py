"""The losses: NT-Xent equivalence at M = 2 (lightly), the paper's formulas at M > 2, invariances, the
Arithmetic/Geometric relations, stability, and clear errors."""

import math

import pv_reference as reference
import pytest
import torch
from polyview import METHODS, PolyViewLoss, num_candidates, pairwise_terms, pvc_loss, simclr_loss


def embeddings(k: int, m: int, d: int = 8, seed: int = 0) -> torch.Tensor:
    return torch.randn(k, m, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def value_and_grad(fn, z: torch.Tensor) -> tuple[float, torch.Tensor]:
    z = z.clone().requires_grad_(True)
    out = fn(z)
    (g,) = torch.autograd.grad(out, z)
    return out.item(), g


@pytest.mark.parametrize("tau", [0.07, 0.2, 0.5, 1.0])
@pytest.mark.parametrize("k", [2, 7, 64])
def test_m2_equals_lightly_ntxent(tau, k):
    from lightly.loss import NTXentLoss

    z = embeddings(k, 2, 16, seed=k)
    theirs = NTXentLoss(temperature=tau, memory_bank_size=0)
    v_ref, g_ref = value_and_grad(lambda t: theirs(t[:, 0], t[:, 1]), z)
    for method in ("geometric", "all-pairs", "suffstats", "arithmetic"):
        v, g = value_and_grad(lambda t, method=method: pvc_loss(t, tau, method), z)
        assert v == pytest.approx(v_ref, rel=1e-9, abs=1e-9), method
        torch.testing.assert_close(g, g_ref, rtol=1e-7, atol=1e-9)
    # the appendix code's (harmonic) form at M = 2 is the same loss shifted by the constant -log K
    v, g = value_and_grad(lambda t: pvc_loss(t, tau, "harmonic"), z)
    assert v == pytest.approx(v_ref - math.log(k), abs=1e-9)
    torch.testing.assert_close(g, g_ref, rtol=1e-7, atol=1e-9)
    assert simclr_loss(z[:, 0], z[:, 1], tau).item() == pytest.approx(v_ref, abs=1e-9)


def test_m2_equals_the_published_ntxent_formula():
    z = embeddings(16, 2, 8, seed=3)
    for tau in (0.1, 0.5):
        v_ref, g_ref = value_and_grad(lambda t, tau=tau: reference.nt_xent(t[:, 0], t[:, 1], tau), z)
        v, g = value_and_grad(lambda t, tau=tau: pvc_loss(t, tau), z)
        assert v == pytest.approx(v_ref, abs=1e-10)
        torch.testing.assert_close(g, g_ref)


@pytest.mark.parametrize("m", [3, 4, 8])
@pytest.mark.parametrize("method", METHODS)
def test_vectorized_equals_the_slow_reference(m, method):
    z = embeddings(4 if m == 8 else 5, m, 6, seed=m)
    tau = 0.3
    v_ref, g_ref = value_and_grad(lambda t: reference.loss(t, tau, method), z)
    v, g = value_and_grad(lambda t: pvc_loss(t, tau, method), z)
    assert v == pytest.approx(v_ref, abs=1e-10)
    torch.testing.assert_close(g, g_ref, rtol=1e-8, atol=1e-10)


def test_pairwise_terms_match_the_reference_one_by_one():
    z = embeddings(4, 3, 5, seed=1)
    ours = pairwise_terms(z, 0.5)
    ref = reference.pairwise(z, 0.5)
    assert ours.shape == (4, 3, 3)
    assert torch.isnan(torch.diagonal(ours, dim1=1, dim2=2)).all()
    for (i, a, b), v in ref.items():
        assert ours[i, a, b].item() == pytest.approx(v.item(), abs=1e-12)


@pytest.mark.parametrize("method", METHODS)
def test_invariant_to_permuting_samples_and_views(method):
    z = embeddings(9, 4, 8, seed=2)
    base = pvc_loss(z, 0.2, method)
    g = torch.Generator().manual_seed(5)
    perm = torch.randperm(9, generator=g)
    torch.testing.assert_close(pvc_loss(z[perm], 0.2, method), base)
    shared = torch.randperm(4, generator=g)  # the same view permutation for every sample
    torch.testing.assert_close(pvc_loss(z[:, shared], 0.2, method), base)
    if method in ("geometric", "arithmetic", "harmonic"):
        # the poly-view objectives see each sample's views as a set: each sample may permute its own
        each = torch.stack([torch.randperm(4, generator=g) for _ in range(9)])
        torch.testing.assert_close(pvc_loss(z[torch.arange(9)[:, None], each], 0.2, method), base)


@pytest.mark.parametrize("m", [3, 4, 8])
def test_arithmetic_geometric_relations(m):
    k = 6
    z = embeddings(k, m, 8, seed=m)
    geo = pvc_loss(z, 0.2, "geometric").item()
    har = pvc_loss(z, 0.2, "harmonic").item()
    ari = pvc_loss(z, 0.2, "arithmetic").item()
    # appendix (harmonic) form: logsumexp_b l = log(M-1) + log mean_b exp(l) >= log(M-1) + mean_b l (Jensen)
    assert har + math.log(k) - math.log(m - 1) > geo + 1e-6
    # and logsumexp_b l <= max_b l + log(M-1)
    terms = pairwise_terms(z, 0.2).nan_to_num(float("-inf"))
    assert har + math.log(k) <= terms.amax(2).mean().item() + math.log(m - 1) + 1e-9
    # arithmetic mean of the positives' probabilities >= their geometric mean, so the loss is lower
    assert ari < geo - 1e-6
    # the three are minus the logs of the arithmetic, geometric and harmonic means of r = exp(-l), per anchor
    r = torch.exp(-pairwise_terms(z, 0.2).nan_to_num(float("inf")))  # the diagonal (a == b) is 0: dropped
    am = r.sum(2) / (m - 1)
    gm = torch.exp(torch.log(r + torch.eye(m, dtype=r.dtype)).sum(2) / (m - 1))
    hm = (m - 1) / (1 / (r + torch.eye(m, dtype=r.dtype) * 1e300)).sum(2)
    assert ari == pytest.approx(-am.log().mean().item(), abs=1e-9)
    assert geo == pytest.approx(-gm.log().mean().item(), abs=1e-9)
    assert har == pytest.approx(-hm.log().mean().item() + math.log(m - 1) - math.log(k), abs=1e-9)
    # equal pairwise terms (all views of a sample identical): every relation is an equality
    same = embeddings(k, 1, 8, seed=9).expand(k, m, 8)
    geo_s = pvc_loss(same, 0.2, "geometric").item()
    assert pvc_loss(same, 0.2, "harmonic").item() == pytest.approx(geo_s + math.log(m - 1) - math.log(k))
    assert pvc_loss(same, 0.2, "arithmetic").item() == pytest.approx(geo_s)


def test_all_pairs_is_the_mean_of_pairwise_simclr_losses():
    """Views (0, 1, 0, 1): 8 of the 12 ordered pairs are SimCLR on (view 0, view 1), the rest compare a view
    with a copy of itself."""
    z = embeddings(8, 2, 8, seed=4)
    simclr = pvc_loss(z, 0.5, "all-pairs").item()
    self0 = pvc_loss(z[:, [0, 0]], 0.5, "all-pairs").item()
    self1 = pvc_loss(z[:, [1, 1]], 0.5, "all-pairs").item()
    expected = (8 * simclr + 2 * self0 + 2 * self1) / 12
    assert pvc_loss(z[:, [0, 1, 0, 1]], 0.5, "all-pairs").item() == pytest.approx(expected, abs=1e-12)


def test_stable_at_tiny_temperature():
    z = embeddings(16, 4, 8, seed=6)
    for method in METHODS:
        v, g = value_and_grad(lambda t, method=method: pvc_loss(t.float(), 1e-3, method), z)
        assert math.isfinite(v) and torch.isfinite(g).all(), method
        v64 = pvc_loss(z, 1e-3, method).item()
        assert v == pytest.approx(v64, rel=1e-4), method


def test_reduction_none_and_module():
    z = embeddings(10, 3, 8, seed=7)
    for method in METHODS:
        per = pvc_loss(z, 0.2, method, reduction="none")
        assert per.shape == (10,)
        torch.testing.assert_close(per.mean(), pvc_loss(z, 0.2, method))
    crit = PolyViewLoss("geometric", temperature=0.2)
    torch.testing.assert_close(crit(z), pvc_loss(z, 0.2))
    torch.testing.assert_close(crit(z[:, 0], z[:, 1], z[:, 2]), pvc_loss(z, 0.2))
    assert "geometric" in repr(crit)


def test_unnormalised_scores():
    z = embeddings(5, 3, 4, seed=8) * 0.1
    a = pvc_loss(z, 1.0, normalize=False)
    zn = torch.nn.functional.normalize(z, dim=-1)
    assert not torch.isclose(a, pvc_loss(z, 1.0))
    torch.testing.assert_close(pvc_loss(zn, 1.0, normalize=False), pvc_loss(z, 1.0))


def test_candidate_counts():
    assert num_candidates("geometric", 256, 2) == 511 == num_candidates("all-pairs", 256, 2)
    assert num_candidates("geometric", 32, 8) == 8 * 32 - 7
    with pytest.raises(ValueError, match="method"):
        num_candidates("simclr", 4, 2)


@pytest.mark.parametrize(
    "z, kwargs, words",
    [
        (torch.randn(4, 1, 8), {}, "M >= 2"),
        (torch.randn(4, 8), {}, "shaped [K samples, M views, d]"),
        (torch.randn(2, 4, 2, 8), {}, "shaped [K samples, M views, d]"),
        (torch.randn(4, 2, 8), {"tau": 0.0}, "tau must be a finite number > 0"),
        (torch.randn(4, 2, 8), {"tau": -0.1}, "tau must be a finite number > 0"),
        (torch.randn(4, 2, 8), {"tau": float("nan")}, "tau must be a finite number > 0"),
        (torch.randn(4, 2, 8), {"tau": float("inf")}, "tau must be a finite number > 0"),
        (torch.randn(4, 2, 8), {"method": "simclr"}, "method must be one of"),
        (torch.randn(4, 2, 8), {"reduction": "sum"}, "reduction must be"),
        (torch.randn(1, 2, 8), {}, "K >= 2"),
        (torch.ones(4, 2, 8, dtype=torch.long), {}, "floating-point"),
    ],
)
def test_bad_input_is_a_clear_error(z, kwargs, words):
    with pytest.raises((ValueError, TypeError)) as e:
        pvc_loss(z, **kwargs)
    assert words in str(e.value)


def test_mismatched_view_shapes():
    with pytest.raises(ValueError, match="same shape"):
        simclr_loss(torch.randn(4, 8), torch.randn(5, 8))
    with pytest.raises(ValueError, match="same shape"):
        PolyViewLoss()(torch.randn(4, 8), torch.randn(4, 8), torch.randn(4, 7))
    with pytest.raises(ValueError, match="temperature"):
        PolyViewLoss(temperature=0)
    with pytest.raises(TypeError, match="tensor"):
        pvc_loss([[1.0, 2.0]])


def test_half_precision_and_autocast_compute_in_float32():
    z = embeddings(12, 4, 16, seed=11).float()
    ref = pvc_loss(z, 0.1)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        inside = pvc_loss(z, 0.1)
    assert inside.dtype == torch.float32
    torch.testing.assert_close(inside, ref)  # autocast does not reach the scores
    half = pvc_loss(z.bfloat16(), 0.1)
    assert half.dtype == torch.float32
    torch.testing.assert_close(half, pvc_loss(z.bfloat16().float(), 0.1))

import math

import pytest
import torch
from cdslm.scaling import ScalingFit, fit_scaling

TRUE = ScalingFit(E=0.3, A=5.0, B=20.0, alpha=0.5, beta=0.4, objective=0.0)


def _grid():
    n = torch.tensor([2e4, 5e4, 1e5, 2e5], dtype=torch.float64).repeat_interleave(4)
    d = torch.tensor([2e4, 5e4, 1e5, 2e5], dtype=torch.float64).repeat(4)
    return n, d


def test_fit_recovers_known_parameters_from_synthetic_points():
    n, d = _grid()
    f = fit_scaling(n, d, TRUE.predict(n, d))
    for k in ("E", "A", "B", "alpha", "beta"):
        assert getattr(f, k) == pytest.approx(getattr(TRUE, k), rel=2e-3), k
    # and from noisy points it still extrapolates
    g = torch.Generator().manual_seed(0)
    noisy = TRUE.predict(n, d) * torch.exp(0.002 * torch.randn(len(n), generator=g, dtype=torch.float64))
    f = fit_scaling(n, d, noisy)
    assert float(f.predict(1e6, 1e6)) == pytest.approx(float(TRUE.predict(1e6, 1e6)), rel=0.02)


def test_ablated_fits_drop_their_terms():
    n, d = _grid()
    loss = TRUE.predict(n, d)
    only_d = fit_scaling(n, d, loss, terms="D")
    assert only_d.A == 0 and only_d.alpha == 0
    assert torch.allclose(only_d.predict(n[:1], d[:1]), only_d.predict(n[:1] * 10, d[:1]))
    const = fit_scaling(n, d, loss, terms="")
    assert float(loss.min()) <= const.E <= float(loss.max())
    with pytest.raises(ValueError):
        fit_scaling(n, d, loss, terms="X")
    with pytest.raises(ValueError):
        fit_scaling(n, d, -loss)


def test_compute_optimal_allocation_minimises_the_isoflop_curve():
    for c in (1e10, 1e13):
        n_opt, d_opt = TRUE.compute_optimal(c)
        assert float(6 * n_opt * d_opt) == pytest.approx(c, rel=1e-9)
        ns = torch.logspace(
            math.log10(float(n_opt)) - 2, math.log10(float(n_opt)) + 2, 4001, dtype=torch.float64
        )
        best = ns[torch.argmin(TRUE.isoflop(c, ns))]
        assert float(best) == pytest.approx(float(n_opt), rel=0.01)


def test_isoflop_curvature_matches_finite_differences():
    c = 1e12
    n_opt, _ = TRUE.compute_optimal(c)
    h = 1e-3
    x = math.log(float(n_opt))
    f = [float(TRUE.isoflop(c, torch.tensor(math.exp(x + k * h), dtype=torch.float64))) for k in (-1, 0, 1)]
    fd = (f[0] - 2 * f[1] + f[2]) / h**2
    assert float(TRUE.isoflop_curvature(c)) == pytest.approx(fd, rel=1e-4)
    # the curvature falls with compute (kappa ~ C^(-alpha beta / (alpha + beta)))
    k1, k2 = float(TRUE.isoflop_curvature(1e10)), float(TRUE.isoflop_curvature(1e14))
    assert k2 < k1
    assert math.log(k2 / k1) / math.log(1e4) == pytest.approx(-0.5 * 0.4 / 0.9, rel=1e-6)


def test_tokens_per_parameter_exponent_has_the_sign_of_alpha_minus_beta():
    for c in (1e10, 1e14):
        n_opt, d_opt = TRUE.compute_optimal(c)
    r = [float(d / n) for n, d in (TRUE.compute_optimal(c) for c in (1e10, 1e14))]
    assert math.log(r[1] / r[0]) / math.log(1e4) == pytest.approx(TRUE.tokens_per_param_exponent(), rel=1e-9)
    assert TRUE.tokens_per_param_exponent() > 0  # alpha > beta here
    assert ScalingFit(1, 1, 1, 0.3, 0.5, 0).tokens_per_param_exponent() < 0

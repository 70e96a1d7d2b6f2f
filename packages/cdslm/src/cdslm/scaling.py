"""Chinchilla-style scaling fits (Hoffmann et al. 2022, Approach 3) and what follows from them.

    fit = fit_scaling(N, D, L)                  # L(N, D) = E + A / N^alpha + B / D^beta
    fit.predict(N, D)
    n_opt, d_opt = fit.compute_optimal(C)       # C = 6 N D
    fit.tokens_per_param_exponent()             # D*/N* ~ C^((alpha - beta) / (alpha + beta))
    fit.isoflop_curvature(C)                    # d^2 L / d(ln N)^2 at N* along C = 6 N D

The fit minimises ``sum_i Huber_delta(LSE(a - alpha ln N_i, b - beta ln D_i, e) - ln L_i)`` (A = e^a, B = e^b,
E = e^e) from a grid of initialisations: the objective is evaluated at all of them in one batch (optionally
after ``adam_steps`` of batched Adam), and the best ``refine`` are refined with L-BFGS in float64. ``terms`` drops N or D (the ablated fits that serve as controls).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import asdict, dataclass

import torch


@dataclass
class ScalingFit:
    E: float
    A: float
    B: float
    alpha: float
    beta: float
    objective: float
    terms: str = "ND"

    def predict(self, n, d):
        n = torch.as_tensor(n, dtype=torch.float64)
        d = torch.as_tensor(d, dtype=torch.float64)
        out = self.E + torch.zeros_like(n * d)
        if "N" in self.terms:
            out = out + self.A / n**self.alpha
        if "D" in self.terms:
            out = out + self.B / d**self.beta
        return out

    def _g(self) -> float:
        return (self.alpha * self.A / (self.beta * self.B)) ** (1.0 / (self.alpha + self.beta))

    def compute_optimal(self, c):
        """``N* = G (C/6)^(beta/(alpha+beta))``, ``D* = (C/6)^(alpha/(alpha+beta)) / G``."""
        if self.terms != "ND":
            raise ValueError("compute-optimal allocation needs both N and D terms")
        c = torch.as_tensor(c, dtype=torch.float64)
        s = self.alpha + self.beta
        g = self._g()
        return g * (c / 6) ** (self.beta / s), (c / 6) ** (self.alpha / s) / g

    def tokens_per_param_exponent(self) -> float:
        """Exponent of ``D*/N*`` in C: negative (the ratio falls with compute) iff alpha < beta."""
        return (self.alpha - self.beta) / (self.alpha + self.beta)

    def isoflop_curvature(self, c):
        """kappa = alpha (alpha + beta) A N*^(-alpha): the curvature of L in ln N at the optimum along C = 6ND."""
        n_opt, _ = self.compute_optimal(c)
        return self.alpha * (self.alpha + self.beta) * self.A * n_opt ** (-self.alpha)

    def isoflop(self, c: float, n):
        """L along the isoFLOP curve C = 6 N D at the model sizes ``n``."""
        n = torch.as_tensor(n, dtype=torch.float64)
        return self.predict(n, c / (6 * n))

    def to_dict(self) -> dict:
        return asdict(self)


def huber(x: torch.Tensor, delta: float) -> torch.Tensor:
    a = x.abs()
    return torch.where(a <= delta, 0.5 * x**2, delta * (a - 0.5 * delta))


def _objective(p: torch.Tensor, ln_n, ln_d, ln_l, delta: float, terms: str) -> torch.Tensor:
    """p (..., 5) = (a, b, e, alpha, beta); returns (...,) summed Huber losses."""
    a, b, e, al, be = p.unbind(-1)
    parts = [e[..., None].expand(*e.shape, ln_l.shape[0])]
    if "N" in terms:
        parts.append(a[..., None] - al[..., None] * ln_n)
    if "D" in terms:
        parts.append(b[..., None] - be[..., None] * ln_d)
    pred = torch.logsumexp(torch.stack(parts, -1), -1)
    return huber(pred - ln_l, delta).sum(-1)


def fit_scaling(
    n,
    d,
    loss,
    *,
    delta: float = 1e-3,
    terms: str = "ND",
    grid: dict | None = None,
    adam_steps: int = 0,
    refine: int = 4,
) -> ScalingFit:
    """Fit ``L(N, D) = E + A/N^alpha + B/D^beta`` (or the ``terms`` "N", "D", "" ablations) to points."""
    if terms not in ("ND", "N", "D", ""):
        raise ValueError(f"terms must be ND, N, D or '', got {terms!r}")
    ln_n = torch.log(torch.as_tensor(n, dtype=torch.float64))
    ln_d = torch.log(torch.as_tensor(d, dtype=torch.float64))
    loss_t = torch.as_tensor(loss, dtype=torch.float64)
    if not (loss_t > 0).all():
        raise ValueError("the scaling fit is on log L: every loss must be positive")
    ln_l = torch.log(loss_t)
    g = grid or {
        "a": (0.0, 5.0, 10.0),
        "b": (0.0, 5.0, 10.0),
        "e": (-1.0, 0.5),
        "alpha": (0.2, 0.7, 1.5),
        "beta": (0.2, 0.7, 1.5),
    }
    e0 = float(ln_l.min()) - 0.1
    inits = torch.tensor(
        list(itertools.product(g["a"], g["b"], (*g["e"], e0), g["alpha"], g["beta"])), dtype=torch.float64
    )
    # batched Adam from every initialisation
    p = inits.clone().requires_grad_(True)
    opt = torch.optim.Adam([p], lr=0.05) if adam_steps else None
    for _ in range(adam_steps):
        obj = _objective(_constrain(p), ln_n, ln_d, ln_l, delta, terms)
        opt.zero_grad()
        obj.sum().backward()
        opt.step()
    with torch.no_grad():
        obj = _objective(_constrain(p), ln_n, ln_d, ln_l, delta, terms)
        obj = torch.nan_to_num(obj, nan=float("inf"))
    best = None
    for i in torch.argsort(obj)[:refine].tolist():
        q = p[i].detach().clone().requires_grad_(True)
        lb = torch.optim.LBFGS(
            [q],
            lr=1.0,
            max_iter=100,
            tolerance_grad=1e-12,
            tolerance_change=1e-14,
            line_search_fn="strong_wolfe",
        )

        def closure(q=q, lb=lb):
            lb.zero_grad()
            o = _objective(_constrain(q), ln_n, ln_d, ln_l, delta, terms)
            o.backward()
            return o

        try:
            lb.step(closure)
        except RuntimeError:
            pass
        with torch.no_grad():
            o = float(_objective(_constrain(q), ln_n, ln_d, ln_l, delta, terms))
        if math.isfinite(o) and (best is None or o < best[0]):
            best = (o, _constrain(q).detach())
    if best is None:
        raise RuntimeError("scaling fit failed from every initialisation")
    o, q = best
    a, b, e, al, be = q.tolist()
    return ScalingFit(
        E=math.exp(e),
        A=math.exp(a) if "N" in terms else 0.0,
        B=math.exp(b) if "D" in terms else 0.0,
        alpha=al if "N" in terms else 0.0,
        beta=be if "D" in terms else 0.0,
        objective=o,
        terms=terms,
    )


def _constrain(p: torch.Tensor) -> torch.Tensor:
    """Exponents stay in [0, 4] (softly): alpha, beta = 4 sigmoid(.) would slow Adam; clamp is enough here."""
    a, b, e, al, be = p.unbind(-1)
    return torch.stack([a, b, e, al.clamp(0.0, 4.0), be.clamp(0.0, 4.0)], -1)

"""The EWC penalty against a self-supervised anchor, and L2-SP (F = 1) as its control.

Eq. 2 of Ovsianas et al. (2022), the Laplace approximation of the SSL posterior used as the fine-tuning prior::

    L(theta) = L_FT(theta) + (lambda / 2) * sum_i F_i (theta_i - theta*_i)^2

over the backbone's parameters (the new task head is not penalised). ``F = 1`` everywhere is L2-SP (Li et al.
2018), the control that isolates what the Fisher itself adds.

The penalty is vectorised over parameters: one ``torch._foreach_sub``/``_foreach_mul``/``_foreach_norm`` chain
for the value (differentiable), and a fused in-place ``add_grad_`` that adds ``lambda F (theta - theta*)`` to the
gradients directly (no autograd graph), for loops that want the cheapest form::

    penalty = EWCPenalty(model.backbone, fisher, lam=100.0)     # anchor: the backbone's current weights
    loss = task_loss + penalty(model.backbone)                   # autograd form
    # or: task_loss.backward(); penalty.add_grad_(model.backbone)   # same gradient, fused
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence

import torch
from torch import nn


def _named(source: nn.Module | dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return dict(source.named_parameters()) if isinstance(source, nn.Module) else dict(source)


class EWCPenalty:
    """``(lam / 2) * sum_i F_i (theta_i - theta*_i)^2`` over the parameters named in ``fisher`` (or every
    parameter of ``anchor`` when ``fisher`` is None: L2-SP).

    Args:
        anchor: the SSL weights theta* (a module, whose current parameters are copied, or ``{name: tensor}``).
        fisher: ``{name: F}`` (diagonal Fisher, shapes as the parameters), or None for L2-SP (F = 1).
        lam: lambda. May be changed later (``penalty.lam = ...``).
        names: restrict to these parameter names (default: the Fisher's names, or all of the anchor's).
    """

    def __init__(
        self,
        anchor: nn.Module | dict[str, torch.Tensor],
        fisher: dict[str, torch.Tensor] | None,
        lam: float,
        *,
        names: Sequence[str] | None = None,
    ):
        ref = _named(anchor)
        if names is None:
            names = list(fisher) if fisher is not None else list(ref)
        names = list(names)
        missing = [n for n in names if n not in ref]
        if missing:
            raise ValueError(f"EWCPenalty: the anchor has no parameter {missing[0]!r}")
        if fisher is not None:
            absent = [n for n in names if n not in fisher]
            if absent:
                raise ValueError(f"EWCPenalty: the Fisher has no entry for {absent[0]!r}")
            bad = [n for n in names if tuple(fisher[n].shape) != tuple(ref[n].shape)]
            if bad:
                raise ValueError(
                    f"EWCPenalty: Fisher shape {tuple(fisher[bad[0]].shape)} for {bad[0]!r} does not match "
                    f"the parameter's {tuple(ref[bad[0]].shape)}"
                )
        self.names = names
        self.lam = float(lam)
        self.anchor = [ref[n].detach().clone() for n in names]
        self.fisher = (
            None if fisher is None else [fisher[n].detach().to(ref[n].device, ref[n].dtype) for n in names]
        )
        self.sqrt_fisher = None if self.fisher is None else torch._foreach_sqrt(self.fisher)
        self._bound: tuple | None = None

    @classmethod
    def l2sp(cls, anchor: nn.Module | dict[str, torch.Tensor], lam: float, **kw) -> EWCPenalty:
        """L2-SP: the same penalty with ``F = 1``."""
        return cls(anchor, None, lam, **kw)

    def params(
        self, source: nn.Module | dict[str, torch.Tensor] | Sequence[torch.Tensor]
    ) -> list[torch.Tensor]:
        """The tensors the penalty applies to, in its order. For a module the lookup is done once and cached
        (the hot path then does no per-parameter Python work); a list is taken as already in order."""
        if isinstance(source, list | tuple):
            if len(source) != len(self.names):
                raise ValueError(f"EWCPenalty: expected {len(self.names)} tensors, got {len(source)}")
            return list(source)
        if isinstance(source, nn.Module):
            if self._bound is None or self._bound[0]() is not source:
                named = dict(source.named_parameters())
                missing = [n for n in self.names if n not in named]
                if missing:
                    raise ValueError(f"EWCPenalty: the module has no parameter {missing[0]!r}")
                self._bound = (weakref.ref(source), [named[n] for n in self.names])
            return self._bound[1]
        missing = [n for n in self.names if n not in source]
        if missing:
            raise ValueError(f"EWCPenalty: no parameter {missing[0]!r} given")
        return [source[n] for n in self.names]

    def __call__(self, source) -> torch.Tensor:
        """The penalty value, differentiable with respect to the parameters. One custom autograd node: the
        forward computes ``g = lam F (theta - theta*)`` with foreach ops and keeps it; the backward returns
        ``grad_output * g`` (no graph of intermediate foreach results, two passes fewer than autograd's)."""
        ps = self.params(source)
        return _Penalty.apply(self, *ps)

    def value_and_gradient(self, ps: list[torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        with torch.no_grad():
            d = torch._foreach_sub(ps, self.anchor)
            g = torch._foreach_mul(d, self.fisher) if self.fisher is not None else [t.clone() for t in d]
            torch._foreach_mul_(g, self.lam)
            # lam * F * d^2 >= 0 elementwise, so the sum of d * g is its L1 norm
            torch._foreach_mul_(d, g)
            value = 0.5 * torch.stack(torch._foreach_norm(d, 1)).sum()
        return value, g

    @torch.no_grad()
    def gradient(self, source) -> list[torch.Tensor]:
        """``lam * F * (theta - theta*)`` per parameter (the penalty's gradient, closed form)."""
        d = torch._foreach_sub(self.params(source), self.anchor)
        if self.fisher is not None:
            torch._foreach_mul_(d, self.fisher)
        torch._foreach_mul_(d, self.lam)
        return d

    @torch.no_grad()
    def add_grad_(self, source) -> None:
        """Add the penalty's gradient to ``.grad`` of the parameters in place (fused; creates missing grads)."""
        ps = self.params(source)
        if any(p.grad is None for p in ps):
            for p in ps:
                if p.grad is None:
                    p.grad = torch.zeros_like(p)
        torch._foreach_add_([p.grad for p in ps], self.gradient(ps))

    @torch.no_grad()
    def prox_(self, source, lr: float) -> None:
        """Proximal step after an optimizer step of size ``lr`` on the task loss alone:
        ``theta <- theta* + (theta - theta*) / (1 + lr lam F)`` (the exact minimiser of
        ``penalty(theta') + ||theta' - theta||^2 / (2 lr)``), stable for any lambda; fused over parameters."""
        ps = self.params(source)
        d = torch._foreach_sub(ps, self.anchor)
        if self.fisher is not None:
            denom = torch._foreach_mul(self.fisher, lr * self.lam)
            torch._foreach_add_(denom, 1.0)
            torch._foreach_div_(d, denom)
        else:
            torch._foreach_div_(d, 1.0 + lr * self.lam)
        torch._foreach_add_(d, self.anchor)
        torch._foreach_copy_(ps, d)

    def distance(self, source) -> float:
        """``sqrt(sum_i (theta_i - theta*_i)^2)``: how far the weights moved (unweighted), for reports."""
        with torch.no_grad():
            d = torch._foreach_sub(self.params(source), self.anchor)
            return float(torch.stack(torch._foreach_norm(d)).square().sum().sqrt())


class _Penalty(torch.autograd.Function):
    @staticmethod
    def forward(ctx, penalty: EWCPenalty, *ps: torch.Tensor) -> torch.Tensor:
        value, g = penalty.value_and_gradient(list(ps))
        ctx.save_for_backward(*g)
        return value

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):
        g = ctx.saved_tensors
        return (None, *torch._foreach_mul(list(g), grad_output))


def flat_penalty(
    theta: torch.Tensor, anchor: torch.Tensor, fisher: torch.Tensor | None, lam: torch.Tensor | float
) -> torch.Tensor:
    """The same penalty on flat parameter vectors, batched over leading dims: ``theta [..., P]``,
    ``anchor [P]``, ``fisher [..., P]`` or ``[P]`` (None: L2-SP), ``lam`` a float or ``[...]``. Returns
    ``[...]``. One fused expression: what a training loop over stacked arms (several lambdas at once) uses."""
    d = (theta - anchor).square()
    if fisher is not None:
        d = d * fisher
    return 0.5 * torch.as_tensor(lam, dtype=theta.dtype, device=theta.device) * d.sum(-1)


def reference_penalty(
    params: dict[str, torch.Tensor],
    anchor: dict[str, torch.Tensor],
    fisher: dict[str, torch.Tensor] | None,
    lam: float,
) -> torch.Tensor:
    """Eq. 2 written out one parameter at a time (the slow reference the tests and the benchmark compare to)."""
    total = torch.zeros(())
    for name, p in params.items():
        f = 1.0 if fisher is None else fisher[name]
        total = total + (f * (p - anchor[name]) ** 2).sum()
    return 0.5 * lam * total

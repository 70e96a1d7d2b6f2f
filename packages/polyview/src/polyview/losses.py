"""Poly-view contrastive losses over embeddings shaped ``[K samples, M views, d]``.

Shidani, Hjelm, Ramapuram, Webb, Dhekane, Busbridge, "Poly-View Contrastive Learning", ICLR 2024
(arXiv 2403.05490). Notation: ``z[i, a]`` is the (L2-normalised) embedding of view ``a`` of sample ``i`` and
``s(ia, jn) = z[i, a] . z[j, n] / tau``.

The pairwise term of the poly-view objectives (the paper's appendix pseudo-code): anchor ``(i, a)``, positive
``(i, b)``, ``b != a``; the candidates are the positive and every view of every other sample (the anchor's own
other views are left out), ``M K - (M - 1)`` of them::

    l[i, a, b] = -s(ia, ib) + log( exp s(ia, ib) + sum_{j != i} sum_n exp s(ia, jn) )

With ``r[i, a, b] = exp(-l[i, a, b])`` (the positive's softmax probability, a density-ratio estimate up to the
candidate count), the objectives aggregate the ``M - 1`` ratios of each anchor by a mean:

- Geometric PVC (``geometric``): minus the log of their geometric mean,
  ``L_G = 1/(K M) sum_i sum_a 1/(M-1) sum_{b != a} l[i, a, b]``.
- Arithmetic PVC (``arithmetic``): minus the log of their arithmetic mean,
  ``L_A = 1/(K M) sum_i sum_a [ -logsumexp_{b != a}(-l[i, a, b]) + log(M - 1) ]``. The name and the derivation
  (one-vs-rest MI with the arithmetic mean of the pairwise ratios as critic) give this form; see the README.
- ``harmonic``: the form of the appendix pseudo-code as public copies carry it,
  ``1/(K M) sum_i sum_a [ logsumexp_{b != a} l[i, a, b] - log K ]``: minus the log of the *harmonic* mean of
  the ratios, plus ``log(M - 1) - log K``. Kept under the name of what it computes.
- All pairs (``all-pairs``): the mean over ordered view pairs ``(a, b)`` of the two-view SimCLR loss of anchor
  ``(i, a)``, whose candidates are ``(i, b)`` and ``(j, a), (j, b)`` for ``j != i`` (``2K - 1`` of them). This is
  the paper's "multi-crop" baseline in the sense of averaging pairwise losses over all views; it is not SwAV or
  DINO's local-global multi-crop (there are no small crops here).
- Sufficient statistics: anchor ``(i, a)`` against ``T[j, a] = normalise(mean_{b != a} z[j, b])``, the
  statistic of sample ``j``'s other views, with the anchor view of the other samples ``z[j, a], j != i`` as
  further negatives (``2K - 1`` candidates). At ``M = 2`` every objective here is SimCLR's NT-Xent.

Everything is computed from one ``[K M, K M]`` score matrix with masks and ``logsumexp`` (no loop over views,
no ``-1e9`` masking), in ``O(K^2 M^2 d)``. With ``gather=True`` under ``torch.distributed`` the anchors are this
rank's samples and the candidates come from every rank (:func:`polyview.distributed.gather_with_grad`).

Example::

    z = encoder(views).view(K, M, -1)          # views: [K, M, ...]
    loss = pvc_loss(z, tau=0.2)                # Geometric PVC
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from .distributed import gather_with_grad

METHODS = ("geometric", "arithmetic", "harmonic", "all-pairs", "suffstats")
NEG_INF = float("-inf")


def _check(z: torch.Tensor, tau: float, method: str = "geometric", reduction: str = "mean") -> None:
    if not isinstance(z, torch.Tensor):
        raise TypeError(f"z must be a tensor shaped [K, M, d], got {type(z).__name__}")
    if z.dim() != 3:
        raise ValueError(f"z must be shaped [K samples, M views, d], got shape {tuple(z.shape)}")
    k, m, d = z.shape
    if m < 2:
        raise ValueError(f"contrastive losses need M >= 2 views per sample, got M = {m}")
    if k < 1 or d < 1:
        raise ValueError(f"z must have at least one sample and one feature, got shape {tuple(z.shape)}")
    if not z.is_floating_point():
        raise TypeError(f"z must be a floating-point tensor, got {z.dtype}")
    t = float(tau)
    if not (t > 0 and math.isfinite(t)):
        raise ValueError(f"temperature tau must be a finite number > 0, got {tau}")
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    if reduction not in ("mean", "none"):
        raise ValueError(f"reduction must be 'mean' or 'none', got {reduction!r}")


class _ScaledGram(torch.autograd.Function):
    """``scale * x @ x.T`` with the backward ``scale * (g + g.T) @ x`` (one matmul where autograd does two)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, scale: float) -> torch.Tensor:
        ctx.save_for_backward(x)
        ctx.scale = scale
        return (x @ x.T).mul_(scale)

    @staticmethod
    def backward(ctx, g: torch.Tensor):
        (x,) = ctx.saved_tensors
        return ((g + g.T) @ x).mul_(ctx.scale), None


class _Scores(NamedTuple):
    q: torch.Tensor  # this rank's (normalised) embeddings, the anchors: [k, M, d]
    keys: torch.Tensor  # every rank's, the candidates: [K, M, d]
    mine: torch.Tensor  # the anchors' own rows of keys: [k, M, d]
    offset: int  # where the anchors' samples sit among the candidates
    scores: torch.Tensor  # s(ia, jn): [k, M, K, M]
    same: torch.Tensor  # candidate sample j is anchor i's own sample: [k, K]


def _float32(fn):
    """Run a loss with autocast off and half-precision embeddings upcast: scores and logsumexp in float32."""

    @functools.wraps(fn)
    def wrapper(z, *args, **kwargs):
        if isinstance(z, torch.Tensor) and z.dtype in (torch.float16, torch.bfloat16):
            z = z.float()
        device = z.device.type if isinstance(z, torch.Tensor) else "cpu"
        with torch.autocast(device_type=device, enabled=False):
            return fn(z, *args, **kwargs)

    return wrapper


def _prepare(z: torch.Tensor, tau: float, normalize: bool, gather: bool, scores: bool = True) -> _Scores:
    if normalize:
        z = F.normalize(z, dim=-1)
    keys, offset = gather_with_grad(z) if gather else (z, 0)
    k, m, d = z.shape
    total = keys.shape[0]
    if total < 2:
        raise ValueError("contrastive losses need K >= 2 samples (negatives come from the other samples)")
    flat = z.reshape(k * m, d)
    if not scores:  # suffstats builds its own scores
        sim = flat.new_empty(0)
    elif (
        keys is z
    ):  # one process: the scores are a Gram matrix, whose backward needs one matmul instead of two
        sim = _ScaledGram.apply(flat, 1.0 / float(tau)).view(k, m, total, m)
    else:
        sim = ((flat / float(tau)) @ keys.reshape(total * m, d).T).view(k, m, total, m)
    own = torch.arange(k, device=z.device) + offset  # each anchor's own sample among the candidates
    same = own[:, None] == torch.arange(total, device=z.device)[None, :]
    return _Scores(z, keys, keys[offset : offset + k], offset, sim, same)


def _positives(b: _Scores) -> torch.Tensor:
    """``s(ia, ib)`` for every anchor view a and positive view b: ``[k, M, M]``, a view of the scores."""
    k = b.q.shape[0]
    block = b.scores[:, :, b.offset : b.offset + k, :]  # [k, M, k, M]: the anchors against their own samples
    return torch.diagonal(block, dim1=0, dim2=2).permute(2, 0, 1)


def _reduce(per_sample: torch.Tensor, reduction: str) -> torch.Tensor:
    return per_sample.mean() if reduction == "mean" else per_sample


@_float32
def pairwise_terms(
    z: torch.Tensor, tau: float = 0.2, *, normalize: bool = True, gather: bool = False
) -> torch.Tensor:
    """The poly-view pairwise losses ``l[i, a, b]`` shaped ``[K, M, M]`` (the diagonal ``a == b`` is NaN).

    ``l[i, a, b] = -s(ia, ib) + logaddexp(s(ia, ib), N[i, a])`` with ``N[i, a]`` the ``logsumexp`` of the
    anchor's scores against every view of every other sample, shared by all positives ``b``.
    """
    _check(z, tau)
    terms = _pairwise(_prepare(z, tau, normalize, gather))
    eye = torch.eye(z.shape[1], dtype=torch.bool, device=terms.device)
    return terms.masked_fill(eye, float("nan"))


def _pairwise(b: _Scores) -> torch.Tensor:
    """``[k, M, M]`` pairwise terms; the diagonal holds finite values that callers must ignore."""
    pos = _positives(b)
    k, m, total, _ = b.scores.shape
    # the anchor's own sample is masked with an additive -inf bias; one logsumexp over contiguous rows of K M
    bias = torch.zeros((k, 1, total, 1), dtype=b.scores.dtype, device=b.scores.device)
    bias = bias.masked_fill_(b.same[:, None, :, None], NEG_INF)
    neg = torch.logsumexp((b.scores + bias).view(k, m, total * m), dim=2)  # [k, M]
    return torch.logaddexp(pos, neg[:, :, None]) - pos


@_float32
def pvc_loss(
    z: torch.Tensor,
    tau: float = 0.2,
    method: str = "geometric",
    *,
    normalize: bool = True,
    gather: bool = False,
    reduction: str = "mean",
) -> torch.Tensor:
    """A poly-view contrastive loss of embeddings ``z`` shaped ``[K, M, d]`` (``M >= 2``).

    ``method``: ``geometric`` (Geometric PVC, the default), ``arithmetic`` (Arithmetic PVC: minus the log of
    the arithmetic mean of the positives' probabilities), ``harmonic`` (the appendix pseudo-code's form: the
    harmonic mean, shifted by ``-log K``), ``all-pairs`` (the mean of pairwise SimCLR losses) or ``suffstats``
    (each view against the statistic of the other views).
    ``tau``: the temperature. ``normalize``: L2-normalise ``z`` first (cosine similarities; SimCLR's choice).
    ``gather``: under ``torch.distributed``, contrast this rank's samples against every rank's (call with the
    same ``K`` on every rank and average gradients over ranks, as DDP does). ``reduction``: ``mean`` (a scalar)
    or ``none`` (one value per sample, averaged over its views, shaped ``[K]``).

    At ``M = 2`` every method is NT-Xent (SimCLR), ``harmonic`` being shifted by ``-log K``.
    """
    _check(z, tau, method, reduction)
    if method == "all-pairs":
        return all_pairs_loss(z, tau, normalize=normalize, gather=gather, reduction=reduction)
    if method == "suffstats":
        return suffstats_loss(z, tau, normalize=normalize, gather=gather, reduction=reduction)
    b = _prepare(z, tau, normalize, gather)
    m = z.shape[1]
    terms = _pairwise(b)  # [k, M, M]
    off = ~torch.eye(m, dtype=torch.bool, device=z.device)
    if method == "geometric":
        per_anchor = (terms * off).sum(2) / (m - 1)
    elif method == "arithmetic":
        per_anchor = -torch.logsumexp((-terms).masked_fill(~off, NEG_INF), dim=2) + math.log(m - 1)
    else:  # harmonic (the appendix pseudo-code)
        per_anchor = torch.logsumexp(terms.masked_fill(~off, NEG_INF), dim=2) - math.log(b.keys.shape[0])
    return _reduce(per_anchor.mean(1), reduction)


@_float32
def all_pairs_loss(
    z: torch.Tensor,
    tau: float = 0.2,
    *,
    normalize: bool = True,
    gather: bool = False,
    reduction: str = "mean",
) -> torch.Tensor:
    """All pairs: the mean over ordered view pairs ``(a, b)`` of the two-view NT-Xent loss (the paper's
    "multi-crop" baseline: every view is a full view, not SwAV/DINO's small local crops).

    For the pair ``(a, b)`` the anchor ``(i, a)`` has the positive ``(i, b)`` and the negatives ``(j, a)`` and
    ``(j, b)`` for ``j != i``: per view pair it is exactly SimCLR on views ``a`` and ``b``.
    """
    _check(z, tau, "all-pairs", reduction)
    b = _prepare(z, tau, normalize, gather)
    m = z.shape[1]
    pos = _positives(b)  # [k, M, M]
    by_view = torch.logsumexp(
        b.scores.masked_fill(b.same[:, None, :, None], NEG_INF), dim=2
    )  # [k, M(a), M(n)]
    own_view = torch.diagonal(by_view, dim1=1, dim2=2)  # [k, M]: negatives (j, a)
    neg = torch.logaddexp(own_view[:, :, None], by_view)  # negatives (j, a) and (j, b)
    terms = torch.logaddexp(pos, neg) - pos
    off = ~torch.eye(m, dtype=torch.bool, device=z.device)
    per_sample = (terms * off).sum((1, 2)) / (m * (m - 1))
    return _reduce(per_sample, reduction)


@_float32
def suffstats_loss(
    z: torch.Tensor,
    tau: float = 0.2,
    *,
    normalize: bool = True,
    gather: bool = False,
    reduction: str = "mean",
) -> torch.Tensor:
    """Sufficient statistics: each view against the normalised mean of the sample's other views.

    Anchor ``(i, a)``; positive ``T[i, a] = normalise(mean_{b != a} z[i, b])``; negatives ``T[j, a]`` and the
    anchor view ``z[j, a]`` of every other sample ``j != i``. At ``M = 2``, ``T[j, a]`` is the other view and
    this is NT-Xent. The form of the paper's Eq. 22 is read here, not copied: see the README.
    """
    _check(z, tau, "suffstats", reduction)
    b = _prepare(z, tau, normalize, gather, scores=False)
    m = b.q.shape[1]

    def stat(v: torch.Tensor) -> torch.Tensor:  # normalised mean of the other views: [., M, d]
        rest = (v.sum(1, keepdim=True) - v) / (m - 1)
        return F.normalize(rest, dim=-1) if normalize else rest

    to_stats = torch.einsum("iad,jad->iaj", b.q, stat(b.keys)) / float(tau)  # [k, M, K]
    to_views = torch.einsum("iad,jad->iaj", b.q, b.keys) / float(tau)
    to_views = to_views.masked_fill(b.same[:, None, :], NEG_INF)
    pos = torch.einsum("iad,iad->ia", b.q, stat(b.mine)) / float(tau)  # [k, M]
    lse = torch.logsumexp(torch.cat([to_stats, to_views], dim=2), dim=2)
    return _reduce((lse - pos).mean(1), reduction)


def simclr_loss(
    z1: torch.Tensor, z2: torch.Tensor, tau: float = 0.5, *, normalize: bool = True, gather: bool = False
) -> torch.Tensor:
    """SimCLR's NT-Xent on two views ``[K, d]`` each (``2K - 1`` candidates per anchor)."""
    if z1.shape != z2.shape:
        raise ValueError(
            f"the two views must have the same shape, got {tuple(z1.shape)} and {tuple(z2.shape)}"
        )
    return pvc_loss(torch.stack([z1, z2], dim=1), tau, "geometric", normalize=normalize, gather=gather)


def num_candidates(method: str, k: int, m: int) -> int:
    """How many candidates (the positive included) each softmax of ``method`` ranks, for ``K`` samples."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    if method in ("all-pairs", "suffstats"):
        return 2 * k - 1
    return m * k - (m - 1)


class PolyViewLoss(nn.Module):
    """:func:`pvc_loss` as a module.

    Call it with one tensor ``[K, M, d]`` or with ``M`` tensors ``[K, d]`` (one per view)::

        criterion = PolyViewLoss("geometric", temperature=0.2)
        loss = criterion(z)                    # or criterion(z_view1, z_view2, z_view3, ...)
    """

    def __init__(
        self,
        method: str = "geometric",
        temperature: float = 0.2,
        *,
        normalize: bool = True,
        gather_distributed: bool = False,
    ):
        super().__init__()
        if method not in METHODS:
            raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
        t = float(temperature)
        if not (t > 0 and math.isfinite(t)):
            raise ValueError(f"temperature must be a finite number > 0, got {temperature}")
        self.method, self.temperature = method, t
        self.normalize, self.gather_distributed = normalize, gather_distributed

    def forward(self, *views: torch.Tensor) -> torch.Tensor:
        if len(views) == 1:
            z = views[0]
        else:
            shapes = {tuple(v.shape) for v in views}
            if len(shapes) != 1:
                raise ValueError(f"all views must have the same shape, got {sorted(shapes)}")
            z = torch.stack(views, dim=1)
        return pvc_loss(
            z, self.temperature, self.method, normalize=self.normalize, gather=self.gather_distributed
        )

    def extra_repr(self) -> str:
        return f"method={self.method!r}, temperature={self.temperature}"

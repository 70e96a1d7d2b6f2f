"""PART's relative-transform targets, pair sampling, the two pair heads and the loss.

For a reference patch i and a target patch j with boxes ``(x, y, w, h)`` the target is (PART Sec. 3, the
reference implementation's ``--centered_targets``)::

    theta_ij = ((cx_j - cx_i) / w_i, (cy_j - cy_i) / h_i [, log(w_j / w_i), log(h_j / h_i)])

with box centres ``c``. The shifts are divided by ``shift_norm`` (per axis; :func:`shift_norm` gives
``(S - P) / P``, which maps on-size shifts into [-1, 1], as REPR does); the reference keeps raw ratios ``w_j / w_i``
where we take logs (REPR's choice; a deviation noted in the README). For equal-size boxes theta is antisymmetric
(``theta_ji = -theta_ij``) with a zero diagonal; the log-ratio channels are antisymmetric always.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .sampling import Size, box_centres, pair


def shift_norm(size: Size, patch: Size) -> tuple[float, float]:
    """``((W - pw) / pw, (H - ph) / ph)``: the largest on-size shift in units of the patch, per axis (1 where the
    patch spans the axis)."""
    (h, w), (ph, pw) = pair(size), pair(patch)
    return (max((w - pw) / pw, 1.0), max((h - ph) / ph, 1.0))


def all_pairs(n: int, *, device: torch.device | str = "cpu") -> torch.Tensor:
    """Every ordered pair ``(i, j)`` of ``n`` patches, the diagonal included: ``[n * n, 2]`` (row-major)."""
    i, j = torch.meshgrid(torch.arange(n, device=device), torch.arange(n, device=device), indexing="ij")
    return torch.stack([i.flatten(), j.flatten()], -1)


def sample_pairs(n: int, m: int, *, generator: torch.Generator | None = None, device="cpu") -> torch.Tensor:
    """``m`` distinct ordered pairs out of the ``n * n`` (the same subset for the whole batch, as the reference)."""
    if m >= n * n:
        return all_pairs(n, device=device)
    idx = torch.randperm(n * n, generator=generator)[:m].to(device)
    return torch.stack([idx // n, idx % n], -1)


def relative_targets(
    boxes: torch.Tensor,
    pairs: torch.Tensor | None = None,
    *,
    log_scale: bool = False,
    norm: tuple[float, float] = (1.0, 1.0),
    axes: int = 2,
) -> torch.Tensor:
    """theta for ``pairs`` ``[M, 2]`` (all pairs when None) of ``boxes`` ``[B, N, 4]``: ``[B, M, c]`` with
    ``c = axes * (2 if log_scale else 1)``; ``axes = 1`` keeps x only (time series)."""
    if pairs is None:
        pairs = all_pairs(boxes.shape[1], device=boxes.device)
    i, j = pairs[:, 0], pairs[:, 1]
    c = box_centres(boxes)[..., :axes]
    wh = boxes[..., 2 : 2 + axes]
    n = torch.tensor(norm[:axes], device=boxes.device, dtype=boxes.dtype)
    shift = (c[:, j] - c[:, i]) / wh[:, i] / n
    if not log_scale:
        return shift
    return torch.cat([shift, torch.log(wh[:, j] / wh[:, i])], -1)


def floor_loss(targets: torch.Tensor) -> torch.Tensor:
    """The mean-predictor floor: the MSE of predicting each channel's mean (over batch and pairs)."""
    flat = targets.reshape(-1, targets.shape[-1])
    return ((flat - flat.mean(0)) ** 2).mean()


def part_mse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """PART's loss: MSE over pairs and channels (uniform weights)."""
    return F.mse_loss(pred, target)


def antisymmetry(pred: torch.Tensor, pairs: torch.Tensor, n: int) -> float:
    """``mean |t_ij + t_ji| / (mean |t_ij| + mean |t_ji|)`` over the off-diagonal pairs present in both orders, in
    [0, 1]: 0 for an antisymmetric predictor (``t_ji = -t_ij``), 1 for a symmetric or constant one."""
    index = torch.full((n, n), -1, dtype=torch.long, device=pred.device)
    index[pairs[:, 0], pairs[:, 1]] = torch.arange(len(pairs), device=pred.device)
    bwd = index[pairs[:, 1], pairs[:, 0]]
    ok = (bwd >= 0) & (pairs[:, 0] != pairs[:, 1])
    a, b = pred[:, ok.nonzero().flatten()], pred[:, bwd[ok]]
    return float((a + b).abs().mean() / (a.abs().mean() + b.abs().mean()).clamp_min(1e-12))


class PairwiseMLPHead(nn.Module):
    """``theta_ij = W [z_i ; z_j] + b`` (the reference's ``pairwise_mlp``; ``hidden > 0`` adds one GELU layer)."""

    def __init__(self, dim: int, out: int, hidden: int = 0):
        super().__init__()
        if hidden:
            self.net = nn.Sequential(nn.Linear(2 * dim, hidden), nn.GELU(), nn.Linear(hidden, out))
        else:
            self.net = nn.Linear(2 * dim, out)

    def forward(self, z: torch.Tensor, pairs: torch.Tensor) -> torch.Tensor:
        """``z`` ``[B, N, D]``, ``pairs`` ``[M, 2]`` -> ``[B, M, out]``."""
        return self.net(torch.cat([z[:, pairs[:, 0]], z[:, pairs[:, 1]]], -1))


class CrossAttentionHead(nn.Module):
    """The "relative encoder" of the paper's figure, with concatenated-pair queries (``patch_cat``): one query
    ``q_ij = W_q [z_i ; z_j]`` per pair attends over all patch tokens, then ``Linear(D -> out)``.

    (The reference's other query type, sin-cos codes of the indices, cannot fit even one batch; see the README.)"""

    def __init__(self, dim: int, out: int, heads: int = 4):
        super().__init__()
        self.query = nn.Linear(2 * dim, dim)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.out = nn.Linear(dim, out)

    def forward(self, z: torch.Tensor, pairs: torch.Tensor) -> torch.Tensor:
        q = self.query(torch.cat([z[:, pairs[:, 0]], z[:, pairs[:, 1]]], -1))
        a, _ = self.attn(q, z, z, need_weights=False)
        return self.out(a)


def make_head(kind: str, dim: int, out: int, heads: int = 4) -> nn.Module:
    if kind == "cross_attention":
        return CrossAttentionHead(dim, out, heads)
    if kind == "pairwise_mlp":
        return PairwiseMLPHead(dim, out)
    raise ValueError(f"unknown head {kind!r}; expected cross_attention or pairwise_mlp")

"""Frozen-feature probes: ridge regression (closed form) on the flattened on-grid tokens, the ridge strength and
whether to add the continuous position embedding chosen on the validation split, metrics measured on test.

Classification is a ridge probe onto one-hot targets (argmax), which is deterministic and takes milliseconds.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

ALPHAS = (0.1, 1.0, 10.0, 100.0, 1e3, 1e4, 1e5)


@torch.no_grad()
def features(encoder, x: torch.Tensor, *, pos: bool, batch: int = 256) -> torch.Tensor:
    """The encoder's on-grid patch tokens, flattened in grid order: ``[n, N * D]`` (float64)."""
    was = encoder.training
    encoder.eval()
    out = [encoder(x[i : i + batch], pos=pos).flatten(1) for i in range(0, len(x), batch)]
    encoder.train(was)
    return torch.cat(out).double()


def ridge_fit(x: torch.Tensor, y: torch.Tensor, alpha: float) -> Callable[[torch.Tensor], torch.Tensor]:
    """Ridge regression on standardised features; returns the predictor."""
    mu, sd = x.mean(0), x.std(0).clamp_min(1e-8)
    z = (x - mu) / sd
    ym = y.mean(0)
    d = z.shape[1]
    if d <= z.shape[0]:
        w = torch.linalg.solve(z.T @ z + alpha * torch.eye(d, dtype=z.dtype), z.T @ (y - ym))
    else:  # dual form
        w = z.T @ torch.linalg.solve(z @ z.T + alpha * torch.eye(z.shape[0], dtype=z.dtype), y - ym)
    return lambda q: ((q - mu) / sd) @ w + ym


def box_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """IoU of ``(cx, cy, w, h)`` boxes, row by row."""
    a0, a1 = a[:, :2] - a[:, 2:] / 2, a[:, :2] + a[:, 2:] / 2
    b0, b1 = b[:, :2] - b[:, 2:] / 2, b[:, :2] + b[:, 2:] / 2
    inter = (torch.minimum(a1, b1) - torch.maximum(a0, b0)).clamp(min=0).prod(1)
    area = a[:, 2:].clamp(min=0).prod(1) + b[:, 2:].clamp(min=0).prod(1) - inter
    return inter / area.clamp_min(1e-12)


def _metric(task: str, pred: torch.Tensor, target: torch.Tensor) -> float:
    """Higher is better for every task (errors are negated for selection)."""
    if task == "box":
        return float(box_iou(pred, target).mean())
    if task == "class":
        return float((pred.argmax(1) == target.argmax(1)).double().mean())
    if task == "onset":
        return -float((pred - target).abs().mean())
    if task == "forecast":
        return -float(((pred - target) ** 2).mean())
    raise ValueError(task)


def probe(task: str, feats: dict[str, dict[str, torch.Tensor]], targets: dict[str, torch.Tensor]) -> dict:
    """Choose (position embedding on/off, alpha) on val, report the test metric.

    ``feats[pos_key][split]``: features per option; ``targets[split]``: targets (class labels one-hot already)."""
    best = None
    for key, f in feats.items():
        for alpha in ALPHAS:
            fit = ridge_fit(f["train"], targets["train"], alpha)
            score = _metric(task, fit(f["val"]), targets["val"])
            if best is None or score > best[0]:
                best = (score, key, alpha, fit)
    score, key, alpha, fit = best
    test = _metric(task, fit(feats[key]["test"]), targets["test"])
    sign = -1.0 if task in ("onset", "forecast") else 1.0
    return {"test": sign * test, "val": sign * score, "pos": key, "alpha": alpha}


class FineTuner(torch.nn.Module):
    """Fine-tuning with position restored: the encoder sees the continuous sin-cos code of each box's centre (the
    grid, or any off-grid boxes), its patch tokens are mean-pooled with the class token, and a linear head maps
    them to ``out`` outputs. Train it end to end (``encoder`` unfrozen) or with ``encoder.requires_grad_(False)``."""

    def __init__(self, encoder, out: int):
        super().__init__()
        self.encoder = encoder
        self.head = torch.nn.Sequential(
            torch.nn.LayerNorm(2 * encoder.dim), torch.nn.Linear(2 * encoder.dim, out)
        )

    def forward(self, x: torch.Tensor, boxes: torch.Tensor | None = None) -> torch.Tensor:
        enc = self.encoder
        if boxes is None:
            boxes = enc.layout.grid_boxes(x.shape[0], device=x.device)
        from .models import sincos_embed

        tokens = enc.embed(enc.layout.crop(x, boxes))
        z, cls = enc.encode(tokens, sincos_embed(enc.layout.centres(boxes), enc.dim))
        return self.head(torch.cat([z.mean(1), cls], -1))

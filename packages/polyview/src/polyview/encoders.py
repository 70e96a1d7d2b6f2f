"""Encoders for contrastive learning: a backbone (features for evaluation) and a projection head (for the loss).

- :class:`ContrastiveModel`: ``backbone -> head``; ``forward`` accepts any leading dims (``[K, M, ...]`` views)
  and returns projections with the same leading dims; ``encode`` returns the backbone's features.
- :func:`mlp_model`, :func:`cnn_model`: small encoders for the CPU default.
- :func:`timm_model`: any timm architecture by name, built with ``pretrained=False`` (nothing is downloaded),
  classifier removed, plus a projection head (SimCLR's).
- :class:`SeedMLP`: several independent MLPs (one per seed) evaluated as one batched matmul, ``[S, N, D]``.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class ProjectionHead(nn.Sequential):
    """SimCLR's projection head: ``Linear -> (BatchNorm) -> ReLU -> Linear``."""

    def __init__(self, in_dim: int, hidden: int = 2048, out_dim: int = 128, *, batchnorm: bool = True):
        layers: list[nn.Module] = [nn.Linear(in_dim, hidden, bias=not batchnorm)]
        if batchnorm:
            layers.append(nn.BatchNorm1d(hidden))
        layers += [nn.ReLU(inplace=True), nn.Linear(hidden, out_dim)]
        super().__init__(*layers)


class ContrastiveModel(nn.Module):
    """A backbone and a projection head; inputs may carry leading view dims, e.g. ``[K, M, C, H, W]``."""

    def __init__(self, backbone: nn.Module, head: nn.Module, *, sample_dims: int):
        super().__init__()
        self.backbone, self.head = backbone, head
        self.sample_dims = sample_dims  # dims of one sample: 1 for vectors, 3 for images

    def _flat(self, fn, x: torch.Tensor) -> torch.Tensor:
        lead = x.shape[: x.dim() - self.sample_dims]
        out = fn(x.reshape(-1, *x.shape[x.dim() - self.sample_dims :]))
        return out.reshape(*lead, out.shape[-1])

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Backbone features (what a linear probe or kNN evaluates)."""
        return self._flat(self.backbone, x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Projections (what the contrastive loss sees)."""
        return self._flat(lambda t: self.head(self.backbone(t)), x)


def mlp_model(in_dim: int, hidden: int = 256, feat_dim: int = 128, proj_dim: int = 64) -> ContrastiveModel:
    """An MLP backbone ``in -> hidden -> feat`` and a projection head ``feat -> hidden -> proj``."""
    backbone = nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, feat_dim))
    head = nn.Sequential(
        nn.ReLU(), nn.Linear(feat_dim, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, proj_dim)
    )
    return ContrastiveModel(backbone, head, sample_dims=1)


def cnn_model(
    in_channels: int = 3, width: int = 32, feat_dim: int = 128, proj_dim: int = 64
) -> ContrastiveModel:
    """A small CNN (three conv blocks, global average pooling) for small images, with a projection head."""

    def block(a: int, b: int, stride: int) -> list[nn.Module]:
        return [nn.Conv2d(a, b, 3, stride, 1, bias=False), nn.BatchNorm2d(b), nn.ReLU(inplace=True)]

    backbone = nn.Sequential(
        *block(in_channels, width, 1),
        *block(width, 2 * width, 2),
        *block(2 * width, 4 * width, 2),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(4 * width, feat_dim),
    )
    return ContrastiveModel(backbone, ProjectionHead(feat_dim, 2 * feat_dim, proj_dim), sample_dims=3)


def timm_model(
    name: str, *, proj_hidden: int = 2048, proj_dim: int = 128, in_chans: int = 3, **kwargs
) -> ContrastiveModel:
    """Any timm architecture by name (``pretrained=False``, no classifier) with SimCLR's projection head."""
    import timm

    try:
        backbone = timm.create_model(name, pretrained=False, num_classes=0, in_chans=in_chans, **kwargs)
    except RuntimeError as e:  # timm: "Unknown model (...)"
        raise ValueError(f"timm has no model {name!r}: {e}") from None
    return ContrastiveModel(
        backbone, ProjectionHead(backbone.num_features, proj_hidden, proj_dim), sample_dims=3
    )


class SeedLinear(nn.Module):
    """``S`` independent linear layers applied to ``[S, N, in]`` with one ``baddbmm``."""

    def __init__(self, seeds: int, in_dim: int, out_dim: int, *, generator: torch.Generator | None = None):
        super().__init__()
        bound = 1 / math.sqrt(in_dim)  # nn.Linear's default initialisation
        self.weight = nn.Parameter((torch.rand(seeds, in_dim, out_dim, generator=generator) * 2 - 1) * bound)
        self.bias = nn.Parameter((torch.rand(seeds, 1, out_dim, generator=generator) * 2 - 1) * bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.baddbmm(self.bias, x, self.weight)


class SeedMLP(nn.Module):
    """One MLP backbone and projection head per seed, batched: inputs ``[S, ..., in]``.

    ``sizes`` is the backbone ``(in, hidden, ..., feat)``; the head is ``feat -> hidden -> proj`` after a ReLU.
    Seed ``s`` of ``SeedMLP(seeds, ..., seed=q)`` does not depend on how many seeds are batched.
    """

    def __init__(self, seeds: int, sizes: tuple[int, ...], proj: tuple[int, ...], *, seed: int = 0):
        super().__init__()

        def stack(dims: tuple[int, ...], salt: int) -> nn.ModuleList:
            layers = nn.ModuleList()
            for li, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
                gens = [
                    torch.Generator().manual_seed(seed * 1009 + s * 101 + salt + li) for s in range(seeds)
                ]
                parts = [SeedLinear(1, a, b, generator=g) for g in gens]  # seed s alone decides its weights
                layer = SeedLinear.__new__(SeedLinear)
                nn.Module.__init__(layer)
                layer.weight = nn.Parameter(torch.cat([p.weight.data for p in parts]))
                layer.bias = nn.Parameter(torch.cat([p.bias.data for p in parts]))
                layers.append(layer)
            return layers

        self.seeds = seeds
        self.backbone = stack(sizes, 0)
        self.head = stack((sizes[-1], *proj), 50)

    @staticmethod
    def _run(layers: nn.ModuleList, x: torch.Tensor, relu_last: bool = False) -> torch.Tensor:
        for i, layer in enumerate(layers):
            x = layer(x)
            if i < len(layers) - 1 or relu_last:
                x = torch.relu(x)
        return x

    def _flat(self, fn, x: torch.Tensor) -> torch.Tensor:
        s, lead, d = x.shape[0], x.shape[1:-1], x.shape[-1]
        out = fn(x.reshape(s, -1, d))
        return out.reshape(s, *lead, out.shape[-1])

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self._flat(lambda t: self._run(self.backbone, t), x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._flat(lambda t: self._run(self.head, torch.relu(self._run(self.backbone, t))), x)

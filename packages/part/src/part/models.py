"""The encoder (a timm VisionTransformer with no position embedding), continuous position embeddings, and the
three pretext objectives in one interface: PART, MAE and a DropPos-style position classifier.

Every objective is an ``nn.Module`` with ``.encoder`` and ``loss(x, generator) -> (loss, stats)``; images are
``[B, C, H, W]``, time series ``[B, C, T]`` (a :class:`Layout` of height 1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from .relative import all_pairs, floor_loss, make_head, part_mse, relative_targets, sample_pairs, shift_norm
from .sampling import box_centres, crop_patches, grid_boxes, grid_rows, sample_boxes, stitch


@dataclass(frozen=True)
class Layout:
    """Input geometry: ``size = (H, W)`` (``(1, T)`` for a series), ``patch = (ph, pw)``, ``chans``."""

    size: tuple[int, int]
    patch: tuple[int, int]
    chans: int

    @classmethod
    def image(cls, size: int, patch: int, chans: int = 3) -> Layout:
        return cls((size, size), (patch, patch), chans)

    @classmethod
    def series(cls, length: int, window: int, chans: int) -> Layout:
        return cls((1, length), (1, window), chans)

    @property
    def axes(self) -> int:
        return 1 if self.size[0] == 1 else 2

    @property
    def grid(self) -> tuple[int, int]:
        return (self.size[0] // self.patch[0], self.size[1] // self.patch[1])

    @property
    def n(self) -> int:
        return self.grid[0] * self.grid[1]

    def as_image(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, :, None, :] if self.axes == 1 and x.dim() == 3 else x

    def grid_boxes(self, batch: int, device="cpu") -> torch.Tensor:
        return grid_boxes(self.size, self.patch, batch=batch, device=device)

    def sample_boxes(
        self, batch: int, n: int, *, scale=(1.0, 1.0), aspect=False, generator=None, device="cpu"
    ):
        return sample_boxes(
            batch, n, self.size, self.patch, scale=scale, aspect=aspect, generator=generator, device=device
        )

    def crop(self, x: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
        return crop_patches(self.as_image(x), boxes, self.patch)

    def centres(self, boxes: torch.Tensor) -> torch.Tensor:
        """Box centres in [0, 1] of the image, ``[..., axes]``."""
        c = box_centres(boxes)[..., : self.axes]
        return c / torch.tensor([self.size[1], self.size[0]][: self.axes], dtype=c.dtype, device=c.device)


def sincos_embed(
    centres: torch.Tensor, dim: int, *, temperature: float = 10000.0, scale: float = 2 * math.pi
) -> torch.Tensor:
    """A continuous sin-cos position embedding of centres ``[..., A]`` in [0, 1] (A = 1 or 2 axes): ``[..., dim]``.

    Each axis gets ``dim / A`` channels (half sines, half cosines) at frequencies ``temperature ** -k``; on grid
    centres this is the usual fixed 2-D sin-cos table, and any off-grid box gets its own code."""
    a = centres.shape[-1]
    per = dim // a
    if per % 2 or per * a != dim:
        raise ValueError(f"sincos_embed: dim {dim} must split into {a} even parts")
    freqs = temperature ** (-torch.arange(per // 2, device=centres.device, dtype=centres.dtype) / (per // 2))
    ang = (centres * scale)[..., None] * freqs  # [..., A, per/2]
    return torch.cat([ang.sin(), ang.cos()], -1).flatten(-2)


class Encoder(nn.Module):
    """A timm ``VisionTransformer`` built with ``pos_embed='none'`` (no download), fed patches stitched into a
    canvas so its stock conv patch embedding applies (kernel = stride = patch). Position enters only through
    :meth:`encode`'s ``pos`` (a continuous embedding of box centres), or not at all (PART's pretraining)."""

    def __init__(self, layout: Layout, dim: int = 64, depth: int = 4, heads: int = 4, mlp_ratio: float = 2.0):
        super().__init__()
        from timm.models.vision_transformer import VisionTransformer

        self.layout = layout
        self.dim = dim
        rows = 1 if layout.axes == 1 else grid_rows(layout.n)
        self.rows = rows
        ph, pw = layout.patch
        self.vit = VisionTransformer(
            img_size=(rows * ph, (layout.n // rows) * pw),
            patch_size=(ph, pw),
            in_chans=layout.chans,
            num_classes=0,
            global_pool="",
            embed_dim=dim,
            depth=depth,
            num_heads=heads,
            mlp_ratio=mlp_ratio,
            class_token=True,
            pos_embed="none",
        )

    def embed(self, patches: torch.Tensor) -> torch.Tensor:
        """``[B, N, C, ph, pw]`` -> tokens ``[B, N, D]`` (token k is patch k). N must be the layout's N."""
        if patches.shape[1] != self.layout.n:
            raise ValueError(f"the encoder embeds {self.layout.n} patches at a time, got {patches.shape[1]}")
        return self.vit.patch_embed(stitch(patches, self.rows))

    def encode(
        self, tokens: torch.Tensor, pos: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Tokens ``[B, M, D]`` (any M: a visible subset works) plus ``pos`` when given -> (patch tokens
        ``[B, M, D]``, class token ``[B, D]``). Without ``pos`` the map is permutation-equivariant."""
        x = tokens if pos is None else tokens + pos
        x = torch.cat([self.vit.cls_token.expand(x.shape[0], -1, -1), x], 1)
        x = self.vit.norm(self.vit.blocks(self.vit.norm_pre(x)))
        return x[:, 1:], x[:, 0]

    def forward(
        self, x: torch.Tensor, boxes: torch.Tensor | None = None, *, pos: bool = True
    ) -> torch.Tensor:
        """Encode the patches at ``boxes`` (the grid when None) of ``x``, with the continuous position embedding
        of their centres when ``pos``: ``[B, N, D]``."""
        if boxes is None:
            boxes = self.layout.grid_boxes(x.shape[0], device=x.device)
        tokens = self.embed(self.layout.crop(x, boxes))
        p = sincos_embed(self.layout.centres(boxes), self.dim) if pos else None
        return self.encode(tokens, p)[0]


# -- objectives ----------------------------------------------------------------------------------------------


class PART(nn.Module):
    """PART: off-grid patches, encoder without position embedding, a pair head regressing theta_ij, MSE.

    ``pairs``: pairs per step (0: all N^2, the default for small N). ``scale``/``aspect``: box sampling
    (``(1, 1)`` = fixed size, the reference's v2; e.g. ``(0.5, 2)`` with ``aspect`` = v3); ``log_scale`` adds the
    scale channels. ``stats`` reports the loss as a fraction of the batch's mean-predictor floor."""

    def __init__(
        self,
        encoder: Encoder,
        *,
        head: str = "cross_attention",
        pairs: int = 0,
        scale: tuple[float, float] = (1.0, 1.0),
        aspect: bool = False,
        log_scale: bool = False,
        head_heads: int = 4,
    ):
        super().__init__()
        self.encoder = encoder
        lay = encoder.layout
        self.pairs, self.scale, self.aspect, self.log_scale = pairs, tuple(scale), aspect, log_scale
        self.channels = lay.axes * (2 if log_scale else 1)
        self.norm = shift_norm(lay.size, lay.patch)
        self.head = make_head(head, encoder.dim, self.channels, head_heads)

    def predict(self, x: torch.Tensor, boxes: torch.Tensor, pairs: torch.Tensor) -> torch.Tensor:
        z, _ = self.encoder.encode(self.encoder.embed(self.encoder.layout.crop(x, boxes)))
        return self.head(z, pairs)

    def targets(self, boxes: torch.Tensor, pairs: torch.Tensor) -> torch.Tensor:
        lay = self.encoder.layout
        return relative_targets(boxes, pairs, log_scale=self.log_scale, norm=self.norm, axes=lay.axes)

    def sample(
        self, batch: int, generator: torch.Generator | None, device
    ) -> tuple[torch.Tensor, torch.Tensor]:
        lay = self.encoder.layout
        boxes = lay.sample_boxes(
            batch, lay.n, scale=self.scale, aspect=self.aspect, generator=generator, device=device
        )
        if self.pairs:
            pairs = sample_pairs(lay.n, self.pairs, generator=generator, device=device)
        else:
            pairs = all_pairs(lay.n, device=device)
        return boxes, pairs

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> tuple[torch.Tensor, dict]:
        return self.loss(x, generator)

    def loss(self, x: torch.Tensor, generator: torch.Generator | None = None) -> tuple[torch.Tensor, dict]:
        boxes, pairs = self.sample(x.shape[0], generator, x.device)
        pred = self.predict(x, boxes, pairs)
        tgt = self.targets(boxes, pairs)
        loss = part_mse(pred, tgt)
        return loss, {"floor_ratio": float(loss.detach() / floor_loss(tgt).clamp_min(1e-12))}


def _keep_indices(batch: int, n: int, keep: int, generator, device) -> torch.Tensor:
    noise = torch.rand(batch, n, generator=generator).to(device)
    return noise.argsort(1)[:, :keep]


def _gather(x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    return torch.gather(x, 1, idx[..., None].expand(-1, -1, x.shape[-1]))


class MAE(nn.Module):
    """Masked autoencoding on the grid (He et al. 2022): encode the visible ``1 - mask_ratio`` of the patches
    (with the sin-cos position embedding), decode with mask tokens, regress per-patch normalised pixels of the
    masked patches."""

    def __init__(
        self,
        encoder: Encoder,
        *,
        mask_ratio: float = 0.75,
        decoder_dim: int = 64,
        decoder_depth: int = 1,
        heads: int = 4,
    ):
        super().__init__()
        from timm.models.vision_transformer import Block

        self.encoder = encoder
        self.mask_ratio = mask_ratio
        lay = encoder.layout
        self.patch_dim = lay.chans * lay.patch[0] * lay.patch[1]
        self.decoder_dim = decoder_dim
        self.to_decoder = nn.Linear(encoder.dim, decoder_dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, decoder_dim))
        nn.init.normal_(self.mask_token, std=0.02)
        self.decoder = nn.Sequential(
            *[Block(decoder_dim, heads, mlp_ratio=2.0) for _ in range(decoder_depth)]
        )
        self.decoder_norm = nn.LayerNorm(decoder_dim)
        self.to_pixels = nn.Linear(decoder_dim, self.patch_dim)

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> tuple[torch.Tensor, dict]:
        return self.loss(x, generator)

    def loss(self, x: torch.Tensor, generator: torch.Generator | None = None) -> tuple[torch.Tensor, dict]:
        enc, lay = self.encoder, self.encoder.layout
        b, n = x.shape[0], lay.n
        boxes = lay.grid_boxes(b, device=x.device)
        patches = lay.crop(x, boxes)
        centres = lay.centres(boxes)
        keep = max(1, int(round(n * (1 - self.mask_ratio))))
        order = torch.rand(b, n, generator=generator).to(x.device).argsort(1)
        vis, hid = order[:, :keep], order[:, keep:]
        tokens = enc.embed(patches) + sincos_embed(centres, enc.dim)
        z, _ = enc.encode(_gather(tokens, vis))
        d = self.to_decoder(z)
        full = self.mask_token.expand(b, n, -1).clone()
        full = full.scatter(1, vis[..., None].expand(-1, -1, self.decoder_dim), d)
        full = full + sincos_embed(centres, self.decoder_dim)
        pred = self.to_pixels(self.decoder_norm(self.decoder(full)))  # [B, N, patch_dim]
        target = patches.flatten(2)
        target = (target - target.mean(-1, keepdim=True)) / (target.var(-1, keepdim=True) + 1e-6).sqrt()
        loss = F.mse_loss(_gather(pred, hid), _gather(target, hid))
        return loss, {}


class DropPos(nn.Module):
    """A DropPos-style objective (Wang et al. 2023): keep ``1 - mask_ratio`` of the grid patches, drop the position
    embedding of ``pos_mask_ratio`` of those (a learned token instead), and classify each such token's grid position
    among the N, against a Gaussian-smoothed target (``sigma`` in patch units). The attentive reconstruction
    branch and the sigma schedule of the paper are left out."""

    def __init__(
        self, encoder: Encoder, *, mask_ratio: float = 0.5, pos_mask_ratio: float = 0.75, sigma: float = 1.0
    ):
        super().__init__()
        self.encoder = encoder
        self.mask_ratio, self.pos_mask_ratio, self.sigma = mask_ratio, pos_mask_ratio, sigma
        lay = encoder.layout
        self.pos_token = nn.Parameter(torch.zeros(1, 1, encoder.dim))
        nn.init.normal_(self.pos_token, std=0.02)
        self.classifier = nn.Linear(encoder.dim, lay.n)
        rows, cols = lay.grid
        yy, xx = torch.meshgrid(torch.arange(rows), torch.arange(cols), indexing="ij")
        coords = torch.stack([xx.flatten(), yy.flatten()], -1).float()
        d2 = ((coords[:, None] - coords[None]) ** 2).sum(-1)
        self.register_buffer(
            "soft_targets", F.softmax(-d2 / (2 * max(sigma, 1e-6) ** 2), -1), persistent=False
        )

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> tuple[torch.Tensor, dict]:
        return self.loss(x, generator)

    def loss(self, x: torch.Tensor, generator: torch.Generator | None = None) -> tuple[torch.Tensor, dict]:
        enc, lay = self.encoder, self.encoder.layout
        b, n = x.shape[0], lay.n
        boxes = lay.grid_boxes(b, device=x.device)
        keep = max(1, int(round(n * (1 - self.mask_ratio))))
        vis = _keep_indices(b, n, keep, generator, x.device)
        n_drop = max(1, int(round(keep * self.pos_mask_ratio)))
        drop = torch.zeros(b, keep, dtype=torch.bool, device=x.device)
        drop.scatter_(1, _keep_indices(b, keep, n_drop, generator, x.device), True)
        tokens = _gather(enc.embed(lay.crop(x, boxes)), vis)
        pos = _gather(sincos_embed(lay.centres(boxes), enc.dim), vis)
        pos = torch.where(drop[..., None], self.pos_token.expand(b, keep, -1), pos)
        z, _ = enc.encode(tokens, pos)
        logits = self.classifier(z[drop])  # [B * n_drop, N]
        target = self.soft_targets[vis[drop]]
        loss = -(target * F.log_softmax(logits, -1)).sum(-1).mean()
        acc = (logits.argmax(-1) == vis[drop]).float().mean()
        return loss, {"pos_acc": float(acc)}


def build_objective(kind: str, encoder: Encoder, **kwargs) -> nn.Module | None:
    """``part``, ``mae``, ``droppos`` or ``random`` (no objective: the random-init control)."""
    if kind == "part":
        return PART(encoder, **kwargs)
    if kind == "mae":
        return MAE(encoder, **kwargs)
    if kind == "droppos":
        return DropPos(encoder, **kwargs)
    if kind == "random":
        return None
    raise ValueError(f"unknown objective {kind!r}")

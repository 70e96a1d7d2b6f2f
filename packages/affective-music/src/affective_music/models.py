"""ACP-Net and its baselines: two modality branches, a common space, and a two-way correspondence head.

All models take ``(audio, image)`` batches and return ``[B, 2]`` logits (index 1 = "true correspondence": the two
carry the same emotion), and expose ``embed_audio`` / ``embed_image`` (the frozen embeddings that the emotion
probe and the retrieval use)::

    net = ACPNet(audio=ConvTower(1), image=ConvTower(3))
    logits = net(log_mel[:, None], images)                 # [B, 2]
    loss = F.cross_entropy(logits, same_emotion.long())

=====================  =============================================================================================
model                  what
=====================  =============================================================================================
``ACPNet``             branches -> projections to a common ``dim``-space (L2-normalised) -> fusion
                       ``[a, v, |a - v|, a * v]`` -> FC -> ReLU -> FC-2 (the paper's ACP-Net; fusion as assumed here)
``ACPCosine``          same branches and projections; logit of "true" = ``w cos(a, v) + b`` (``w > 0``): the
                       classifier is a metric, so nearest-neighbour retrieval ranks by the classifier's own score
``L3Net``              Look-Listen-Learn style: the two towers' features concatenated -> FC -> ReLU -> FC-2
                       (no common space)
ACP on a spectrogram   the Spectrogram-ACP baseline: ``ACPNet`` whose audio branch is an image CNN on
                       :func:`affective_music.frontend.spectrogram_image` pictures (built by the trainer)
=====================  =============================================================================================

Branches: :class:`ConvTower` ([Conv3x3-BN-ReLU-MaxPool] x L, global average pool) or any timm architecture
(:func:`timm_tower`, built with ``pretrained=False``: nothing is downloaded).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ConvTower(nn.Module):
    """[Conv3x3-BN-ReLU-MaxPool2] per entry of ``channels``, then global average pooling: ``[B, C, H, W]`` to
    ``[B, channels[-1]]``. The audio branch sees a log-mel spectrogram as a one-channel picture."""

    def __init__(self, in_channels: int, channels: tuple[int, ...] = (16, 32, 64)):
        super().__init__()
        layers: list[nn.Module] = []
        c = in_channels
        for out in channels:
            layers += [
                nn.Conv2d(c, out, 3, padding=1, bias=False),
                nn.BatchNorm2d(out),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(2),
            ]
            c = out
        self.body = nn.Sequential(*layers)
        self.out_features = c

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x).mean(dim=(-2, -1))


class _Timm(nn.Module):
    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self.out_features = int(model.num_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


def timm_tower(name: str, in_channels: int = 3) -> nn.Module:
    """Any timm architecture as a branch (``pretrained=False``, no classifier): ``[B, C, H, W] -> [B, F]``."""
    import timm

    return _Timm(timm.create_model(name, pretrained=False, num_classes=0, in_chans=in_channels))


class InputNorm(nn.Module):
    """A fixed affine normalisation ``(x - mean) / std`` (scalars measured on the training split). Unlike a
    per-clip normalisation it keeps loudness, one of the emotion cues."""

    def __init__(self, mean: float = 0.0, std: float = 1.0):
        super().__init__()
        self.register_buffer("mean", torch.tensor(float(mean)))
        self.register_buffer("std", torch.tensor(float(std)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class _TwoBranch(nn.Module):
    def __init__(
        self,
        audio: nn.Module,
        image: nn.Module,
        audio_norm: nn.Module | None = None,
        image_norm: nn.Module | None = None,
    ):
        super().__init__()
        self.audio, self.image = audio, image
        self.audio_norm = audio_norm or InputNorm()
        self.image_norm = image_norm or InputNorm()

    def audio_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.audio(self.audio_norm(x))

    def image_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.image(self.image_norm(x))


class ACPNet(_TwoBranch):
    """ACP-Net: project both modalities into a common space, fuse, and classify the pair as true/false."""

    def __init__(
        self,
        audio: nn.Module,
        image: nn.Module,
        *,
        dim: int = 64,
        hidden: int = 64,
        normalize: bool = True,
        **norms,
    ):
        super().__init__(audio, image, **norms)
        self.proj_audio = nn.Linear(audio.out_features, dim)
        self.proj_image = nn.Linear(image.out_features, dim)
        self.normalize = normalize
        self.head = nn.Sequential(nn.Linear(4 * dim, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, 2))

    def embed_audio(self, x: torch.Tensor) -> torch.Tensor:
        a = self.proj_audio(self.audio_features(x))
        return F.normalize(a, dim=-1) if self.normalize else a

    def embed_image(self, x: torch.Tensor) -> torch.Tensor:
        v = self.proj_image(self.image_features(x))
        return F.normalize(v, dim=-1) if self.normalize else v

    def fuse(self, a: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return self.head(torch.cat([a, v, (a - v).abs(), a * v], dim=-1))

    def forward(self, audio: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        return self.fuse(self.embed_audio(audio), self.embed_image(image))


class ACPCosine(ACPNet):
    """ACP-Net with a metric head: ``P(true) = sigmoid(w cos(a, v) + b)``, ``w = softplus(.) > 0``; returned as the
    two logits ``[0, w cos + b]`` so that the same cross-entropy trains every model."""

    def __init__(self, audio: nn.Module, image: nn.Module, *, dim: int = 64, **kw):
        kw.pop("hidden", None)
        super().__init__(audio, image, dim=dim, normalize=True, **kw)
        del self.head
        self.raw_scale = nn.Parameter(torch.tensor(2.0))
        self.bias = nn.Parameter(torch.tensor(0.0))

    def fuse(self, a: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        s = F.softplus(self.raw_scale) * (a * v).sum(-1) + self.bias
        return torch.stack([torch.zeros_like(s), s], dim=-1)


class L3Net(_TwoBranch):
    """The L3-Net-style baseline: the towers' features concatenated and classified by FC-ReLU-FC-2."""

    def __init__(self, audio: nn.Module, image: nn.Module, *, hidden: int = 64, **norms):
        norms.pop("dim", None)
        norms.pop("normalize", None)
        super().__init__(audio, image, **norms)
        self.head = nn.Sequential(
            nn.Linear(audio.out_features + image.out_features, hidden),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, 2),
        )

    def embed_audio(self, x: torch.Tensor) -> torch.Tensor:
        return self.audio_features(x)

    def embed_image(self, x: torch.Tensor) -> torch.Tensor:
        return self.image_features(x)

    def fuse(self, a: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return self.head(torch.cat([a, v], dim=-1))

    def forward(self, audio: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        return self.fuse(self.embed_audio(audio), self.embed_image(image))


ARCHS = {"acp": ACPNet, "acp-cos": ACPCosine, "l3": L3Net}


def build(
    arch: str,
    *,
    audio_in: int = 1,
    image_model: str = "cnn",
    audio_model: str = "cnn",
    channels: tuple[int, ...] = (16, 32, 64),
    dim: int = 64,
    hidden: int = 64,
    audio_norm: tuple[float, float] = (0.0, 1.0),
    image_norm: tuple[float, float] = (0.0, 1.0),
) -> nn.Module:
    """A model by name (``acp``, ``acp-cos``, ``l3``); branches are :class:`ConvTower` (``"cnn"``) or a timm
    architecture by name. ``audio_in`` is 1 for log-mel input, 3 for spectrogram pictures."""
    if arch not in ARCHS:
        raise ValueError(f"unknown model {arch!r}; expected one of {sorted(ARCHS)}")

    def tower(name: str, c: int) -> nn.Module:
        return ConvTower(c, channels) if name == "cnn" else timm_tower(name, c)

    return ARCHS[arch](
        tower(audio_model, audio_in),
        tower(image_model, 3),
        dim=dim,
        hidden=hidden,
        audio_norm=InputNorm(*audio_norm),
        image_norm=InputNorm(*image_norm),
    )

"""``uv run --package part train``: PART against MAE, a DropPos-style objective and random init, with claims.

For every modality (``images``: digit glyphs at continuous boxes on scikit-image photographs; ``series``: two-channel
signals with a burst at a continuous onset) and every seed, each arm pretrains the same encoder (same init, same
steps, batch and optimiser) on a pool of unlabelled training inputs; then frozen on-grid features are probed with
ridge regression (strength and position embedding on/off chosen on validation) and measured on test:

* images: box regression (mean IoU; the spatial task) and which of the 18 photographs the background was cropped
  from (accuracy; the global control task);
* series: onset (mean absolute error in samples; the temporal task), forecasting the next samples (MSE) and the
  rhythm class (accuracy; the global control task).

Gates (claims): PART's pretext MSE on test inputs is at most half the mean-predictor floor (control: the same
predictions scored against another input's targets), and its predictions are antisymmetric (control: the untrained
PART model). The ``paper`` preset pretrains PART (ViT-B/16, 224 px, the reference's recipe) on ``--data``, an image
folder, and linear-probes its classes.
"""

from __future__ import annotations

from dataclasses import dataclass

from paperkit.config import BaseConfig, ConfigError, knob

DESCRIPTION = __doc__  # the train command's --help; this module stays torch-free so that --help is fast
ARMS = ("part", "mae", "droppos", "random")
MODALITIES = ("images", "series", "folder")


@dataclass
class Config(BaseConfig):
    modalities: tuple[str, ...] = knob(
        ("images", "series"), "experiments, comma-separated", choices=MODALITIES
    )
    arms: tuple[str, ...] = knob(ARMS, "pretraining arms (random = the untrained encoder)", choices=ARMS)
    seeds: int = knob(5, "seeds per arm (seed, seed + 1, ...): claims are intervals over them", low=1)
    # encoder (the same for every arm)
    dim: int = knob(48, "encoder width", low=8)
    depth: int = knob(2, "encoder blocks", low=1)
    heads: int = knob(4, "attention heads", low=1)
    mlp_ratio: float = knob(2.0, "MLP width / encoder width", low=0, low_open=True)
    # optimisation (the same for every arm)
    steps: int = knob(300, "pretraining steps per arm", low=1)
    batch: int = knob(32, "global batch per step", low=1)
    lr: float = knob(2e-3, "peak AdamW learning rate (one-cycle)", low=0, low_open=True)
    weight_decay: float = knob(0.05, "AdamW weight decay", low=0)
    warmup: float = knob(0.1, "fraction of steps warming up", low=0, high=0.9)
    pool: int = knob(256, "unlabelled pretraining inputs (a fixed pool, drawn from the train split)", low=1)
    # data
    image_size: int = knob(32, "image side S (images)", low=8)
    patch: int = knob(8, "patch side P (images); N = (S / P)^2", low=2)
    glyph_scale: tuple[float, ...] = knob(
        (0.4, 0.75), "digit side as a fraction of S (low, high)", low=0.05, high=0.95
    )
    series_length: int = knob(256, "series length T", low=16)
    window: int = knob(16, "window length (series); N = T / window", low=2)
    horizon: int = knob(32, "forecast horizon (samples after the series)", low=1)
    probe_train: int = knob(1000, "labelled probe inputs, train split", low=10)
    probe_val: int = knob(400, "labelled probe inputs, validation split", low=10)
    probe_test: int = knob(1000, "labelled probe inputs, test split", low=10)
    # PART
    part_head: str = knob("cross_attention", "pair head", choices=("cross_attention", "pairwise_mlp"))
    part_pairs: int = knob(64, "pairs per step (0: all N^2)", low=0)
    part_scale: tuple[float, ...] = knob(
        (1.0, 1.0), "box side / patch side, (low, high); (1, 1) = fixed size", low=0.1
    )
    part_aspect: bool = knob(False, "draw width and height scales independently (variable aspect ratio)")
    part_log_scale: bool = knob(False, "also regress log scale ratios (the 4-channel objective)")
    # baselines
    mae_mask: float = knob(0.75, "MAE mask ratio", low=0, high=0.95)
    mae_decoder_dim: int = knob(48, "MAE decoder width", low=8)
    droppos_mask: float = knob(0.5, "DropPos patch mask ratio", low=0, high=0.95)
    droppos_pos_mask: float = knob(
        0.75, "DropPos: fraction of visible tokens whose position is dropped", low=0.01, high=1
    )
    droppos_sigma: float = knob(1.0, "DropPos label smoothing (patch units)", low=0)
    # gates
    gate_floor: float = knob(0.5, "gate: PART pretext MSE / mean-predictor floor must be <= this", low=0)
    gate_antisym: float = knob(
        0.3, "gate: mean|t_ij + t_ji| / (mean|t_ij| + mean|t_ji|) must be <= this", low=0
    )
    # image folder (the paper preset)
    data: str = knob("", "image folder (DATA/CLASS/IMAGE) for the folder modality")
    workers: int = knob(
        2, "data-loader workers decoding the folder (0: decode in the training process)", low=0
    )
    gate_images: int = knob(256, "held-out folder images decoded for PART's pretext gates", low=2)
    folder_test_fraction: float = knob(
        0.2, "held-out fraction of the folder (half validation, half test)", low=0.05, high=0.9
    )

    def check(self) -> None:
        if "folder" in self.modalities and not self.data:
            raise ConfigError("the folder modality needs --data IMAGE_FOLDER")
        if self.image_size % self.patch:
            raise ConfigError(f"--image-size {self.image_size} is not a multiple of --patch {self.patch}")
        if self.series_length % self.window:
            raise ConfigError(
                f"--series-length {self.series_length} is not a multiple of --window {self.window}"
            )
        if self.dim % (2 * self.heads) or self.dim % 4:
            raise ConfigError(f"--dim {self.dim} must be divisible by 4 and by 2 x --heads")
        for name in ("glyph_scale", "part_scale"):
            v = getattr(self, name)
            if len(v) != 2 or v[0] > v[1]:
                raise ConfigError(f"--{name.replace('_', '-')} needs two values, low <= high")
        if self.part_scale[1] * self.patch > self.image_size:
            raise ConfigError("--part-scale: the largest box does not fit in the image")


PRESETS = {
    "smoke": dict(
        seeds=2,
        steps=8,
        batch=8,
        pool=32,
        dim=16,
        depth=1,
        heads=2,
        image_size=16,
        patch=4,
        series_length=64,
        window=8,
        horizon=8,
        part_pairs=32,
        mae_decoder_dim=16,
        probe_train=60,
        probe_val=30,
        probe_test=40,
        checkpoint_every=4,
        threads=1,
    ),
    "default": dict(threads=1, lr=3e-3, pool=128),
    "paper": dict(
        modalities=("folder",),
        arms=("part",),
        seeds=1,
        dim=768,
        depth=12,
        heads=12,
        mlp_ratio=4.0,
        image_size=224,
        patch=16,
        steps=100_000,
        batch=1024,
        lr=1.25e-4,
        weight_decay=0.05,
        warmup=0.0125,
        part_head="pairwise_mlp",
        part_pairs=4802,
        part_scale=(0.5, 2.0),
        part_aspect=True,
        part_log_scale=True,
        checkpoint_every=1000,
    ),
}

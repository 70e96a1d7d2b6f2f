"""The ``polyview`` trainer's configuration: knobs, presets and description, importable without torch."""

from __future__ import annotations

from dataclasses import dataclass

from paperkit.config import BaseConfig, ConfigError, knob

# the objectives of polyview.losses (kept here so that the configuration imports no torch; a test checks it)
METHODS = ("geometric", "arithmetic", "harmonic", "all-pairs", "suffstats")

DESCRIPTION = """``uv run --package polyview train``: Poly-View Contrastive Learning's claims at CPU scale, measured.

Experiments (``--experiments``; the default runs ``mi`` and ``digits``):

- ``mi``: mutual information at known truth. Gaussian views with a closed-form one-vs-rest MI; a small critic
  trained with all-pairs (multi-crop), Geometric and Arithmetic PVC, the appendix code's harmonic form and
  sufficient statistics at M in {2, 8}, over 5 seeds.
- ``digits``: fixed compute on scikit-learn's digits. M * K views per step held constant, (M, K) in
  {(2, 128), (4, 64), (8, 32)}, the same number of steps, several seeds, linear-probe accuracy; and M in
  {2, 4, 8} at fixed K = 64; each M > 2 against M = 2 on the linear probe and on kNN.
- ``images`` (the ``paper`` preset): a timm ResNet-50 on an image folder or file list (``--data``, streamed from
  disk with a resumable sampler) with M = 8 views of 256 samples per step, LARS and a cosine schedule; on GPUs
  with torchrun.
"""

EXPERIMENTS = ("mi", "digits", "images")


@dataclass
class Config(BaseConfig):
    threads: int = knob(
        1,
        "CPU threads for torch and BLAS (0: the libraries' defaults). The default models are tiny: one thread is "
        "as fast and does not collapse when other jobs share the cores",
        low=0,
    )
    experiments: tuple[str, ...] = knob(
        ("mi", "digits"), "experiments to run, comma-separated", choices=EXPERIMENTS
    )
    # mutual information at known truth
    mi_methods: tuple[str, ...] = knob(
        ("all-pairs", "geometric", "arithmetic", "harmonic", "suffstats"),
        "objectives to train the critic with",
        choices=METHODS,
    )
    mi_views: tuple[int, ...] = knob(
        (2, 8), "numbers of views M (the claims compare the smallest with the largest)", low=2
    )
    mi_samples: int = knob(64, "K samples per batch", low=2)
    mi_dim: int = knob(5, "dimension d of x ~ N(0, I_d)", low=1)
    mi_sigma: float = knob(0.5, "view noise std: v = x + sigma * e", low=0, low_open=True)
    mi_steps: int = knob(400, "Adam steps per critic", low=1)
    mi_lr: float = knob(1e-3, "Adam learning rate", low=0, low_open=True)
    mi_tau: float = knob(0.1, "temperature", low=0, low_open=True)
    mi_eval_batches: int = knob(20, "fresh batches the estimates average over", low=1)
    mi_seeds: int = knob(5, "seeds per (objective, M): critic initialisation and data", low=1)
    # fixed compute on digits
    digits_budget: int = knob(256, "views per step, M * K, held fixed across the fixed-compute arms", low=4)
    digits_views: tuple[int, ...] = knob(
        (2, 4, 8), "numbers of views M (must include 2; each divides the budget)", low=2
    )
    digits_fixed_k: int = knob(64, "K for the accuracy-against-M sweep at fixed K (0 skips it)", low=0)
    digits_steps: int = knob(1000, "training steps of every arm (equal compute at a fixed budget)", low=1)
    digits_seeds: int = knob(5, "seeds per arm, trained as one batched model", low=1)
    digits_method: str = knob(
        "geometric", "objective for M > 2 (M = 2 is SimCLR whatever this is)", choices=METHODS
    )
    digits_tau: float = knob(0.2, "temperature", low=0, low_open=True)
    digits_lr: float = knob(1e-3, "AdamW learning rate", low=0, low_open=True)
    digits_weight_decay: float = knob(0.0, "AdamW weight decay", low=0)
    digits_hidden: int = knob(128, "MLP hidden width", low=1)
    digits_feat: int = knob(64, "backbone feature size (what the probe sees)", low=1)
    digits_proj: int = knob(32, "projection size (what the loss sees)", low=1)
    digits_crop: float = knob(
        0.25, "smallest random-resized-crop area fraction", low=0, low_open=True, high=1
    )
    digits_noise: float = knob(0.3, "Gaussian pixel noise std on views", low=0)
    digits_mask: float = knob(0.3, "probability of masking each pixel of a view", low=0, high=0.99)
    # an image folder with a timm backbone (the paper preset)
    data: str = knob(
        "",
        "image folder (DATA/CLASS/IMAGE) or file list ('path label' per line) for the images experiment; "
        "streamed from disk",
    )
    model: str = knob("resnet50", "timm backbone (built with pretrained=False)")
    image_size: int = knob(224, "crop size", low=8)
    image_load_size: int = knob(
        256, "with --img-views-on device: images are decoded at this size, then cropped on the device", low=8
    )
    img_views_on: str = knob(
        "workers",
        "where the M views are made: on the DataLoader workers (crop, flip, colour jitter per view) or on the "
        "device (one decoded image per sample; polyview's batched views add grayscale and blur)",
        choices=("workers", "device"),
    )
    img_workers: int = knob(
        8, "DataLoader workers per rank that decode and augment (0: in the training process)", low=0
    )
    img_probe_images: int = knob(
        50_000,
        "at most this many training images (a fixed random subset) feed the linear probe and kNN",
        low=2,
    )
    img_views: int = knob(8, "views per sample M", low=2)
    img_batch: int = knob(256, "global samples per step K (M * K images per step)", low=2)
    img_epochs: float = knob(128.0, "passes over the image folder", low=0, low_open=True)
    img_lr: float = knob(0.3, "LARS learning rate at K = 256 (scaled linearly with K)", low=0, low_open=True)
    img_weight_decay: float = knob(1e-6, "weight decay on weights (not biases or norms)", low=0)
    img_warmup_epochs: float = knob(10.0, "linear warm-up, in epochs", low=0)
    img_tau: float = knob(0.1, "temperature", low=0, low_open=True)
    img_method: str = knob("geometric", "objective", choices=METHODS)
    img_proj_hidden: int = knob(2048, "projection head hidden width", low=1)
    img_proj_dim: int = knob(128, "projection size", low=1)
    img_test_fraction: float = knob(
        0.1, "held-out fraction of the folder for the probe", low=0, low_open=True, high=0.9
    )

    def check(self) -> None:
        if 2 not in self.digits_views:
            raise ConfigError("--digits-views must include 2 (SimCLR, the reference)")
        bad = [m for m in self.digits_views if self.digits_budget % m]
        if bad:
            raise ConfigError(f"--digits-budget {self.digits_budget} is not divisible by M = {bad[0]}")
        if any(self.digits_budget // m < 2 for m in self.digits_views):
            raise ConfigError("--digits-budget must leave K >= 2 samples per step at the largest M")
        if "images" in self.experiments and not self.data:
            raise ConfigError("the images experiment needs --data IMAGE_FOLDER")
        if self.img_views_on == "device" and self.image_load_size < self.image_size:
            raise ConfigError("--image-load-size must be >= --image-size")


PRESETS = {
    "smoke": dict(
        mi_methods=("all-pairs", "geometric"),
        mi_seeds=2,
        mi_views=(2, 4),
        mi_samples=32,
        mi_steps=30,
        mi_eval_batches=2,
        digits_budget=64,
        digits_views=(2, 4),
        digits_fixed_k=16,
        digits_steps=30,
        digits_seeds=2,
        digits_hidden=64,
        digits_feat=32,
        digits_proj=16,
        checkpoint_every=10,
    ),
    "default": {},
    "paper": dict(experiments=("images",), checkpoint_every=1000, threads=0),
}

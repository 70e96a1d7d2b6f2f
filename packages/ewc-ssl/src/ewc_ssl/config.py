"""``uv run --package ewc-ssl train``: EWC against a DINO backbone under a spurious correlation, over seeds.

Per seed (``--seeds`` of them, disjoint digit images for pretraining / train / validation / test):

1. **SSL pretraining.** DINO (prototype head, EMA teacher from the core's ``ScaledEMA``) on unlabelled,
   group-balanced Waterbirds-digits (the background texture independent of the label).
2. **Fisher.** The diagonal Fisher of the teacher read as ``p(y | x)`` over its prototypes, from per-sample
   gradients (``torch.func``) on ``--fisher-samples`` pretraining images; saved as safetensors tied to the
   backbone's weights, then loaded back (and checked) by the fine-tuning phase.
3. **Fine-tuning** on the biased training split (texture = label with probability ``--correlation``): plain
   fine-tuning (lambda = 0), EWC and L2-SP (F = 1) over the same lambda grid, all arms trained together as one
   stacked model. lambda is chosen per seed on **validation** worst-group accuracy; claims are on **test**.
4. **Sanity arm.** The same at ``--sanity-correlation`` (0.5: no spurious feature): the EWC-minus-fine-tuning
   gap should close there.

The ``paper`` preset runs the same comparison on a Waterbirds-layout folder (``--data``) with a timm backbone,
its released weights (``--backbone-weights``) and a released or precomputed Fisher (``--fisher``).
"""

from __future__ import annotations

from dataclasses import dataclass

from paperkit.config import BaseConfig, ConfigError, knob

DESCRIPTION = __doc__  # the train command's --help; this module stays torch-free so that --help is fast
EXPERIMENTS = ("digits", "waterbirds")


@dataclass
class Config(BaseConfig):
    experiment: str = knob(
        "digits", "digits (offline, generated) or waterbirds (a folder, --data)", choices=EXPERIMENTS
    )
    seeds: int = knob(5, "independent seeds (pretraining, Fisher, splits and fine-tuning each)", low=1)
    # data
    correlation: float = knob(0.95, "P(texture = label) in the fine-tuning training split", low=0.5, high=1.0)
    sanity_correlation: float = knob(
        0.5,
        "the sanity arm's correlation (0.5: no spurious feature); 0 disables the sanity arm",
        low=0,
        high=1.0,
    )
    amplitude: float = knob(0.4, "background texture amplitude", low=0, high=1)
    split_pretrain: float = knob(
        0.35, "fraction of digit images for SSL pretraining (and the kNN bank)", low=0.05
    )
    split_train: float = knob(0.30, "fraction for the fine-tuning training split", low=0.05)
    split_val: float = knob(
        0.15, "fraction for validation (group-balanced: every image on both textures)", low=0.02
    )
    split_test: float = knob(0.20, "fraction for test (group-balanced)", low=0.02)
    # model
    hidden: int = knob(256, "backbone MLP width", low=1)
    feat_dim: int = knob(128, "backbone output (feature) width", low=1)
    prototypes: int = knob(64, "DINO prototypes K (p(y | x) has K classes)", low=2)
    bottleneck: int = knob(64, "DINO head bottleneck width", low=1)
    # SSL pretraining
    pre_steps: int = knob(300, "DINO steps", low=1)
    pre_batch: int = knob(128, "DINO batch", low=2)
    pre_lr: float = knob(3e-4, "DINO AdamW learning rate", low=0, low_open=True)
    pre_weight_decay: float = knob(0.04, "DINO AdamW weight decay", low=0)
    teacher_momentum: float = knob(
        0.99, "teacher EMA momentum at the start (cosine to 1)", low=0, high=0.99999
    )
    student_temp: float = knob(0.1, "student temperature (also the Fisher's p(y | x))", low=0, low_open=True)
    teacher_temp: float = knob(0.04, "teacher temperature", low=0, low_open=True)
    centering: str = knob(
        "sinkhorn", "teacher centring: sinkhorn (DINOv2) or mean (DINO)", choices=("sinkhorn", "mean")
    )
    redraw_background: bool = knob(True, "SSL views get freshly drawn backgrounds (label-free augmentation)")
    # Fisher
    fisher_variant: str = knob(
        "true",
        "true (y ~ p(y|x)), exact, empirical (y = argmax) or minibatch (the pitfall; do not)",
        choices=("true", "exact", "empirical", "minibatch"),
    )
    fisher_samples: int = knob(1000, "pretraining images the Fisher averages over", low=1)
    fisher_norm: str = knob("mean", "normalise F by its mean, max, or not", choices=("mean", "max", "none"))
    fisher_floor: float = knob(1e-3, "floor on the normalised Fisher", low=0)
    # fine-tuning
    lams: tuple[float, ...] = knob(
        (0.3, 3.0, 30.0, 300.0, 3000.0), "lambda grid (EWC and L2-SP)", low=0, low_open=True
    )
    ft_epochs: int = knob(20, "fine-tuning epochs", low=1)
    ft_batch: int = knob(64, "fine-tuning batch", low=1)
    ft_lr: float = knob(1e-3, "backbone Adam learning rate (cosine to 0)", low=0, low_open=True)
    head_lr: float = knob(1e-2, "head Adam learning rate (cosine to 0)", low=0, low_open=True)
    lp_steps: int = knob(200, "full-batch head warm-up steps on frozen features before fine-tuning", low=0)
    knn_k: int = knob(20, "k of the reverse-transfer kNN", low=1)
    # waterbirds (paper preset)
    data: str = knob("", "Waterbirds-layout folder (metadata.csv: img_filename, y, place, split)")
    model: str = knob("vit_base_patch16_224", "timm backbone for --experiment waterbirds")
    backbone_weights: str = knob("", "local file with the SSL backbone's weights (safetensors or .pt)")
    fisher: str = knob("", "local Fisher file for the backbone (ours, or a released one to import)")
    image_size: int = knob(224, "image side for --experiment waterbirds", low=8)
    wb_batch: int = knob(64, "fine-tuning batch for --experiment waterbirds", low=1)
    wb_workers: int = knob(4, "data-loader workers for --experiment waterbirds", low=0)

    def check(self) -> None:
        total = self.split_pretrain + self.split_train + self.split_val + self.split_test
        if total > 1 + 1e-9:
            raise ConfigError(f"split fractions sum to {total:.3f} > 1")
        if not self.lams:
            raise ConfigError("--lams needs at least one value")
        if self.experiment == "waterbirds":
            for name in ("data", "backbone_weights", "fisher"):
                if not getattr(self, name):
                    raise ConfigError(f"--experiment waterbirds needs --{name.replace('_', '-')}")


PRESETS = {
    "smoke": dict(
        seeds=2,
        pre_steps=20,
        pre_batch=64,
        hidden=64,
        feat_dim=32,
        prototypes=16,
        bottleneck=16,
        fisher_samples=64,
        lams=(3.0, 300.0),
        ft_epochs=2,
        lp_steps=20,
        checkpoint_every=10,
        threads=1,
    ),
    "default": dict(threads=1),
    "paper": dict(
        experiment="waterbirds", seeds=3, ft_epochs=100, ft_lr=1e-5, head_lr=1e-3, checkpoint_every=500
    ),
}

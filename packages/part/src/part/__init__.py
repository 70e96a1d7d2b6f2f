"""PART: self-supervised learning of the relative composition of off-grid patches (Ayoughi et al., 2025)."""

from .models import MAE, PART, DropPos, Encoder, Layout, build_objective, sincos_embed
from .probe import FineTuner
from .relative import (
    CrossAttentionHead,
    PairwiseMLPHead,
    all_pairs,
    antisymmetry,
    floor_loss,
    part_mse,
    relative_targets,
    sample_pairs,
    shift_norm,
)
from .sampling import (
    crop_patches,
    crop_patches_loop,
    crop_windows,
    grid_boxes,
    sample_boxes,
    sample_windows,
    stitch,
    unstitch,
)

__all__ = [
    "MAE",
    "PART",
    "CrossAttentionHead",
    "DropPos",
    "FineTuner",
    "Encoder",
    "Layout",
    "PairwiseMLPHead",
    "all_pairs",
    "antisymmetry",
    "build_objective",
    "crop_patches",
    "crop_patches_loop",
    "crop_windows",
    "floor_loss",
    "grid_boxes",
    "part_mse",
    "relative_targets",
    "sample_boxes",
    "sample_pairs",
    "sample_windows",
    "shift_norm",
    "sincos_embed",
    "stitch",
    "unstitch",
]

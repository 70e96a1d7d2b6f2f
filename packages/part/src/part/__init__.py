"""PART: self-supervised learning of the relative composition of off-grid patches (Ayoughi et al., 2025)."""

from paperkit.lazy import lazy_exports

# Each name is imported on first use, so that `import part` and `train --help` load no torch.
__getattr__, __dir__, __all__ = lazy_exports(
    __name__,
    {
        ".models": ["MAE", "PART", "DropPos", "Encoder", "Layout", "build_objective", "sincos_embed"],
        ".probe": ["FineTuner"],
        ".relative": [
            "CrossAttentionHead",
            "PairwiseMLPHead",
            "all_pairs",
            "antisymmetry",
            "floor_loss",
            "part_mse",
            "relative_targets",
            "sample_pairs",
            "shift_norm",
        ],
        ".sampling": [
            "crop_patches",
            "crop_patches_loop",
            "crop_windows",
            "grid_boxes",
            "sample_boxes",
            "sample_windows",
            "stitch",
            "unstitch",
        ],
    },
)

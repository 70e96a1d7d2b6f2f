"""polyview: Poly-View Contrastive Learning (Shidani et al., ICLR 2024, arXiv 2403.05490).

from polyview import pvc_loss, image_views, timm_model

model = timm_model("resnet50")                       # pretrained=False, with SimCLR's projection head
views = image_views(images, 8, generator, size=224)  # [K, 8, 3, 224, 224], made on the images' device
loss = pvc_loss(model(views), tau=0.1)               # Geometric PVC over [K, M, d]
"""

from paperkit.lazy import lazy_exports

# Each name is imported on first use, so that `import polyview` and `train --help` load no torch.
__getattr__, __dir__, __all__ = lazy_exports(
    __name__,
    {
        ".distributed": ["gather_with_grad"],
        ".encoders": [
            "ContrastiveModel",
            "ProjectionHead",
            "SeedMLP",
            "cnn_model",
            "mlp_model",
            "timm_model",
        ],
        ".losses": [
            "METHODS",
            "PolyViewLoss",
            "all_pairs_loss",
            "num_candidates",
            "pairwise_terms",
            "pvc_loss",
            "simclr_loss",
            "suffstats_loss",
        ],
        ".views": ["image_views", "vector_views"],
    },
)

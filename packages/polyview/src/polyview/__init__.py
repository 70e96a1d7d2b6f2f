"""polyview: Poly-View Contrastive Learning (Shidani et al., ICLR 2024, arXiv 2403.05490).

from polyview import pvc_loss, image_views, timm_model

model = timm_model("resnet50")                       # pretrained=False, with SimCLR's projection head
views = image_views(images, 8, generator, size=224)  # [K, 8, 3, 224, 224], made on the images' device
loss = pvc_loss(model(views), tau=0.1)               # Geometric PVC over [K, M, d]
"""

from .distributed import gather_with_grad
from .encoders import ContrastiveModel, ProjectionHead, SeedMLP, cnn_model, mlp_model, timm_model
from .losses import (
    METHODS,
    PolyViewLoss,
    all_pairs_loss,
    num_candidates,
    pairwise_terms,
    pvc_loss,
    simclr_loss,
    suffstats_loss,
)
from .views import image_views, vector_views

__all__ = [
    "METHODS",
    "ContrastiveModel",
    "PolyViewLoss",
    "ProjectionHead",
    "SeedMLP",
    "cnn_model",
    "gather_with_grad",
    "image_views",
    "mlp_model",
    "all_pairs_loss",
    "num_candidates",
    "pairwise_terms",
    "pvc_loss",
    "simclr_loss",
    "suffstats_loss",
    "timm_model",
    "vector_views",
]

"""ewc-ssl: Elastic Weight Consolidation against a self-supervised backbone (Ovsianas, Ramapuram, Busbridge et al.,
"Elastic Weight Consolidation Improves the Robustness of Self-Supervised Learning Methods under Transfer",
NeurIPS 2022 SSL workshop, arXiv 2210.16365).

fisher = diagonal_fisher(ssl_model, loader, variant="true", params=backbone_names, log_prob=ssl.output_log_prob)
fisher = normalise(fisher, "mean", floor=1e-3)
save_fisher("fisher.safetensors", fisher, ssl_model.backbone, variant="true")
penalty = EWCPenalty(ssl_model.backbone, load_fisher("fisher.safetensors", ssl_model.backbone), lam=300.0)
loss = task_loss + penalty(model.backbone)          # L2-SP control: EWCPenalty.l2sp(anchor, lam)
"""

from paperkit.lazy import lazy_exports

# Each name is imported on first use, so that `import ewc_ssl` and `train --help` load no torch.
__getattr__, __dir__, __all__ = lazy_exports(
    __name__,
    {
        ".data": [
            "GroupData",
            "balanced_groups",
            "metadata_image_list",
            "read_metadata",
            "waterbirds_digits",
        ],
        ".dino": ["DINO", "MLPBackbone", "PrototypeHead", "SSLModel", "dino_loss", "sinkhorn_knopp"],
        ".finetune": ["Arm", "StackedFinetune"],
        ".fisher": [
            "FisherMismatch",
            "diagonal_fisher",
            "import_fisher",
            "linear_fisher",
            "load_fisher",
            "normalise",
            "read_fisher_metadata",
            "save_fisher",
            "weights_fingerprint",
        ],
        ".groups": ["group_accuracy"],
        ".penalty": ["EWCPenalty", "flat_penalty", "reference_penalty"],
    },
)

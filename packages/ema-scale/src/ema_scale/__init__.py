"""ema-scale: the EMA Scaling Rule (Busbridge et al., "How to Scale Your EMA", NeurIPS 2023, arXiv 2307.13813).

from ema_scale import ScaledEMA, Hparams, scale_hparams, build_optimizer

hp = scale_hparams(Hparams("sgd", lr=0.1, momentum=0.9, ema_momentum=0.999), kappa=8)
opt = build_optimizer(model.parameters(), hp)           # lr 0.8
ema = ScaledEMA(model, momentum=0.999, base_batch_size=256)
...; opt.step(); ema.update(model, batch_size=2048)     # rho_hat = 0.999 ** 8
"""

from paperkit.lazy import lazy_exports

# Each name is imported on first use, so that `import ema_scale` and `train --help` load no torch.
__getattr__, __dir__, __all__ = lazy_exports(
    __name__,
    {
        "paperkit.ema": ["Constant", "Cosine", "ScaledEMA", "Warmup", "scale_momentum"],
        ".rules": ["LARS", "BatchSchedule", "Hparams", "apply_hparams", "build_optimizer", "scale_hparams"],
    },
)

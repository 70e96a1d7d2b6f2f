"""cdslm: continuous-diffusion spoken language models (Ramapuram, Dhekane, Shidani et al., "Scaling Properties
of Continuous Diffusion Spoken Language Models", arXiv 2604.24416), at CPU scale on offline espeak-ng speech.

    from cdslm import MMDiT, LogMel, diffusion_loss, ddim_sample, pjsd, fit_scaling

    fe = LogMel(sample_rate=22050)                         # log-mel front end in torch
    model = MMDiT(token_dim=4 * 80, dim=128, depth=4)      # two-stream diffusion transformer (context | continuation)
    loss = diffusion_loss(model, ctx, x0, t, eps, gamma=5.0, drop=drop)   # min-SNR v-prediction, CFG dropout
    x = ddim_sample(model, ctx, x0.shape, steps=16, guidance=2.0)
    fit = fit_scaling(N, D, L)                             # L = E + A/N^alpha + B/D^beta (Huber on log L)
"""

from paperkit.lazy import lazy_exports

# Each name is imported on first use, so that `import cdslm` and `train --help` load no torch.
__getattr__, __dir__, __all__ = lazy_exports(
    __name__,
    {
        ".data": ["Corpus", "load_audio", "load_audio_folder", "synth_corpus"],
        ".diffusion": [
            "alpha_sigma",
            "ddim_sample",
            "diffusion_loss",
            "eps_from_v",
            "guided_v",
            "min_snr_weight",
            "sample_t",
            "snr",
            "v_target",
            "x0_from_v",
        ],
        ".mel": ["LogMel", "griffin_lim", "mel_filterbank"],
        ".model": ["MMDiT", "patchify", "unpatchify"],
        ".pjsd": ["BigramBaseline", "Recogniser", "jsd_bits", "ngram_counts", "pjsd", "train_recogniser"],
        ".scaling": ["ScalingFit", "fit_scaling"],
    },
)

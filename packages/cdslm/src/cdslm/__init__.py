"""cdslm: continuous-diffusion spoken language models (Ramapuram, Dhekane, Shidani et al., "Scaling Properties
of Continuous Diffusion Spoken Language Models", arXiv 2604.24416), at CPU scale on offline espeak-ng speech.

    from cdslm import MMDiT, LogMel, diffusion_loss, ddim_sample, pjsd, fit_scaling

    fe = LogMel(sample_rate=22050)                         # log-mel front end in torch
    model = MMDiT(token_dim=4 * 80, dim=128, depth=4)      # two-stream diffusion transformer (context | continuation)
    loss = diffusion_loss(model, ctx, x0, t, eps, gamma=5.0, drop=drop)   # min-SNR v-prediction, CFG dropout
    x = ddim_sample(model, ctx, x0.shape, steps=16, guidance=2.0)
    fit = fit_scaling(N, D, L)                             # L = E + A/N^alpha + B/D^beta (Huber on log L)
"""

from .data import Corpus, load_audio, load_audio_folder, synth_corpus
from .diffusion import (
    alpha_sigma,
    ddim_sample,
    diffusion_loss,
    eps_from_v,
    guided_v,
    min_snr_weight,
    sample_t,
    snr,
    v_target,
    x0_from_v,
)
from .mel import LogMel, griffin_lim, mel_filterbank
from .model import MMDiT, patchify, unpatchify
from .pjsd import BigramBaseline, Recogniser, jsd_bits, ngram_counts, pjsd, train_recogniser
from .scaling import ScalingFit, fit_scaling

__all__ = [
    "BigramBaseline",
    "Corpus",
    "LogMel",
    "MMDiT",
    "Recogniser",
    "ScalingFit",
    "alpha_sigma",
    "ddim_sample",
    "diffusion_loss",
    "eps_from_v",
    "fit_scaling",
    "griffin_lim",
    "guided_v",
    "jsd_bits",
    "load_audio",
    "load_audio_folder",
    "mel_filterbank",
    "min_snr_weight",
    "ngram_counts",
    "patchify",
    "pjsd",
    "sample_t",
    "snr",
    "synth_corpus",
    "train_recogniser",
    "unpatchify",
    "v_target",
    "x0_from_v",
]

"""``uv run --package cdslm train``: a continuous-diffusion spoken language model on espeak-ng speech, its scaling
grid and fit, and pJSD, with claims measured over seeds against control arms.

1. Synthesise a corpus with espeak-ng (grammar sentences, several voices, rates and pitches): log-mels with frame
   phoneme labels; train / validation / test disjoint by sentence.
2. Train the pJSD phoneme recogniser (frame classifier on log-mels) on the train split.
3. For every seed and model width: train the two-stream diffusion transformer (min-SNR v-prediction, context
   dropped for CFG, ScaledEMA weights), and measure the EMA model's validation and test loss after every
   number of steps in ``--steps`` (the data sizes D of the grid; constant learning rate after warm-up).
   Choose the guidance scale on validation pJSD; measure test pJSD of DDIM continuations.
4. Controls in the same run: an untrained model of the largest width, a phoneme-bigram baseline trained on the
   same data, the real-vs-real floor, scaling fits that ignore N or D or both, and a fit on shuffled losses.
5. Fit L(N, D) = E + A/N^alpha + B/D^beta on the smaller runs and predict the held-out largest run; report the
   compute-optimal allocation, the tokens-per-parameter trend and the isoFLOP curvature.
"""

from __future__ import annotations

from dataclasses import dataclass

from paperkit.config import BaseConfig, ConfigError, knob

DESCRIPTION = __doc__  # the train command's --help; this module stays torch-free so that --help is fast


@dataclass
class Config(BaseConfig):
    # data
    n_sentences: int = knob(
        900, "distinct grammar sentences to synthesise (split 70/15/15 by sentence)", low=20
    )
    corpus: str = knob(
        "", "reuse the corpus of an earlier run (its checkpoints/corpus.pt) instead of synthesising one"
    )
    n_mels: int = knob(80, "mel bins", low=8)
    patch: int = knob(4, "log-mel frames per token", low=1)
    ctx_frames: int = knob(32, "context (prompt) frames; a multiple of --patch", low=1)
    cont_frames: int = knob(32, "continuation frames; a multiple of --patch", low=1)
    # the grid
    widths: tuple[int, ...] = knob(
        (24, 32, 48, 64), "model widths (the N axis); the largest is held out", low=8
    )
    depth: int = knob(2, "transformer blocks", low=1)
    head_dim: int = knob(16, "attention head width (heads = width // head_dim, at least 1)", low=4)
    steps: tuple[int, ...] = knob(
        (50, 100, 200, 400),
        "evaluate after these many steps (the D axis); the largest is held out and only the largest width "
        "trains that long",
        low=1,
    )
    batch: int = knob(64, "global batch (windows per step)", low=1)
    lr: float = knob(2e-3, "AdamW learning rate (constant after warm-up)", low=0, low_open=True)
    warmup: int = knob(50, "linear warm-up steps", low=0)
    weight_decay: float = knob(0.0, "AdamW weight decay", low=0)
    ema: float = knob(
        0.995,
        "EMA momentum at --batch (timm warm-up to it; EMA scaling rule at other batches)",
        low=0,
        high=0.999999,
    )
    gamma: float = knob(5.0, "min-SNR gamma (0: unweighted)", low=0)
    time_schedule: str = knob(
        "uniform", "distribution of diffusion times", choices=("uniform", "logit-normal")
    )
    cfg_drop: float = knob(0.1, "probability of dropping the context in training (CFG)", low=0, high=1)
    seeds: int = knob(3, "training seeds (claims are intervals over them)", low=1)
    # evaluation
    eval_windows: int = knob(256, "fixed validation/test windows for the loss", low=1)
    eval_t: int = knob(8, "stratified diffusion times per evaluation window", low=1)
    guidance_grid: tuple[float, ...] = knob((1.0, 2.0, 3.0), "CFG scales, chosen on validation pJSD", low=0)
    sample_steps: int = knob(16, "DDIM steps", low=1)
    rec_steps: int = knob(400, "recogniser training steps", low=1)
    rec_hidden: int = knob(64, "recogniser width", low=8)
    ngram: int = knob(1, "pJSD n-gram order", low=1)
    pjsd_eps: float = knob(0.5, "add-eps smoothing of the pJSD n-gram counts", low=0)
    fit_error: float = knob(
        0.02, "claimed bound on the relative error of the fit's prediction of the held-out run", low=0
    )
    n_wavs: int = knob(3, "Griffin-Lim WAVs of test continuations written to the run folder", low=0)

    def check(self) -> None:
        for name in ("ctx_frames", "cont_frames"):
            if getattr(self, name) % self.patch:
                raise ConfigError(f"--{name.replace('_', '-')} must be a multiple of --patch {self.patch}")
        if len(set(self.widths)) < 2 or len(set(self.steps)) < 2:
            raise ConfigError("--widths and --steps need at least two distinct values each")
        if self.ngram > self.cont_frames:
            raise ConfigError("--ngram exceeds the continuation length")


PRESETS = {
    "smoke": dict(
        n_sentences=120,
        n_mels=32,
        widths=(16, 32),
        depth=1,
        steps=(10, 20, 40),
        batch=8,
        warmup=5,
        seeds=2,
        eval_windows=32,
        eval_t=2,
        guidance_grid=(1.0, 2.0),
        sample_steps=4,
        rec_steps=40,
        rec_hidden=32,
        n_wavs=1,
        checkpoint_every=10,
        threads=1,
    ),
    "default": dict(threads=1),
    "paper": dict(
        n_sentences=20000,
        ctx_frames=256,
        cont_frames=128,
        widths=(128, 192, 256, 384, 512),
        depth=8,
        head_dim=64,
        steps=(2000, 4000, 8000, 16000, 32000),
        batch=256,
        lr=3e-4,
        warmup=1000,
        ema=0.9999,
        seeds=3,
        eval_windows=2048,
        sample_steps=32,
        rec_steps=5000,
        rec_hidden=256,
        ngram=2,
        checkpoint_every=1000,
    ),
}

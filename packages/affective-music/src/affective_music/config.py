"""``uv run --package affective-music train``: affective correspondence between music and images (ACP-Net).

Every arm is trained on (music clip, image) pairs, balanced true/false, drawn from the *training* clips and images;
the number of steps is chosen on validation pairs (the best of ``steps / eval_every`` checks); every number in the
claims comes from test pairs of clips and images that no arm saw. Arms (``--arms``), each over ``--seeds`` seeds:

- ``acp``: ACP-Net (log-mel audio branch, image branch, common space, fusion ``[a, v, |a-v|, a*v]``, FC-2);
- ``acp-cos``: ACP-Net whose head is ``w cos(a, v) + b`` (a metric; used for retrieval);
- ``l3``: the L3-Net-style baseline (tower features concatenated, FC-2);
- ``spectrogram``: Spectrogram-ACP (ACP-Net whose audio branch is an image CNN on spectrogram pictures);
- ``shuffled``: ACP-Net trained on pairs whose emotion labels were shuffled (the control that must stay at chance).

After training: correspondence accuracy on test pairs; emotion recognition from each branch's frozen embeddings
(linear probe, C chosen on validation; the networks never saw an emotion label); music-to-image retrieval with faiss
(exact, HNSW, IVF): precision@k, mAP, recall against exact search. Raw-feature floors: a linear classifier on
log-mel statistics and on HSV histograms. Data: the synthetic IMAC substitute (:mod:`affective_music.synth`), or
the real IMAC layout with ``--data ROOT`` (:mod:`affective_music.imac`).
"""

from __future__ import annotations

from dataclasses import dataclass

from paperkit.config import BaseConfig, ConfigError, knob

DESCRIPTION = __doc__  # the train command's --help; this module stays torch-free so that --help is fast
ARMS = ("acp", "acp-cos", "l3", "spectrogram", "shuffled")


@dataclass
class Config(BaseConfig):
    data: str = knob(
        "", "IMAC folder (images.csv, music.csv, images/, music/); empty: the synthetic substitute"
    )
    clips: int = knob(900, "synthetic music clips (split into train/val/test)", low=30)
    images: int = knob(2700, "synthetic images (split into train/val/test)", low=30)
    cue_noise: float = knob(0.3, "synthetic: chance that each cue comes from a random class", low=0, high=1)
    label_flip: float = knob(0.1, "synthetic: chance that an observed label is another class", low=0, high=1)
    sample_rate: int = knob(8000, "audio sample rate (Hz)", low=1000)
    seconds: float = knob(3.0, "clip length (s)", low=0.1)
    image_size: int = knob(16, "image side (pixels)", low=8)
    n_mels: int = knob(32, "mel bands of the log-mel front end", low=4)
    n_fft: int = knob(512, "STFT size", low=16)
    hop_length: int = knob(512, "STFT hop (samples)", low=1)
    split: tuple[float, ...] = knob((0.6, 0.2, 0.2), "train,val,test fractions of clips and of images", low=0)
    arms: tuple[str, ...] = knob(ARMS, "arms to train", choices=ARMS)
    seeds: int = knob(5, "seeds per arm (claims are intervals over seeds)", low=1)
    steps: int = knob(250, "training steps per arm and seed", low=1)
    batch: int = knob(48, "pairs per step", low=2)
    lr: float = knob(2e-3, "Adam learning rate", low=0, low_open=True)
    weight_decay: float = knob(0.0, "Adam weight decay", low=0)
    channels: tuple[int, ...] = knob((8, 16, 32), "conv channels of each CNN branch", low=1)
    dim: int = knob(64, "common embedding space (ACP projections)", low=1)
    hidden: int = knob(64, "hidden units of the fusion / concatenation head", low=1)
    audio_model: str = knob(
        "cnn", "audio branch: cnn (ConvTower) or a timm architecture name (pretrained=False)"
    )
    image_model: str = knob(
        "cnn", "image branch: cnn (ConvTower) or a timm architecture name (pretrained=False)"
    )
    eval_every: int = knob(
        50, "validation check every this many steps (the best check's weights are kept)", low=1
    )
    val_pairs: int = knob(2000, "validation pairs", low=10)
    test_pairs: int = knob(4000, "test pairs", low=10)
    probe_cs: tuple[float, ...] = knob(
        (0.1, 1.0, 10.0), "linear-probe C values (chosen on validation)", low=0, low_open=True
    )
    probe_margin: float = knob(0.1, "claimed margin of the emotion probes above chance (1/3)", low=0)
    k: int = knob(10, "retrieval depth k (precision@k, recall@k)", low=1)
    hnsw_m: int = knob(32, "HNSW neighbours per node", low=2)
    ef_search: int = knob(64, "HNSW efSearch", low=1)
    ivf_nlist: int = knob(0, "IVF lists (0: 4 sqrt(N), at most N / 39)", low=0)
    ivf_nprobe: int = knob(4, "IVF lists searched", low=1)
    faiss_threads: int = knob(1, "faiss OpenMP threads (1 is fastest on a shared 2-core machine)", low=1)

    def check(self) -> None:
        if len(self.split) != 3 or abs(sum(self.split) - 1) > 1e-6 or min(self.split) <= 0:
            raise ConfigError("--split needs three positive fractions (train,val,test) summing to 1")
        if self.n_fft > self.sample_rate * self.seconds:
            raise ConfigError("--n-fft is longer than a clip")
        if len(set(self.arms)) != len(self.arms):
            raise ConfigError("--arms lists an arm twice")


PRESETS = {
    "smoke": dict(
        clips=120,
        images=240,
        seeds=2,
        steps=30,
        batch=16,
        eval_every=15,
        val_pairs=200,
        test_pairs=300,
        seconds=1.5,
        channels=(4, 8),
        dim=16,
        hidden=16,
        threads=1,
        checkpoint_every=10,
    ),
    "default": dict(threads=1),
    "paper": dict(
        clips=3812,
        images=85000,
        sample_rate=16000,
        seconds=10.0,
        image_size=64,
        n_mels=64,
        hop_length=256,
        n_fft=1024,
        channels=(16, 32, 64, 64),
        dim=128,
        hidden=128,
        steps=20000,
        batch=256,
        seeds=3,
        eval_every=1000,
        val_pairs=20000,
        test_pairs=40000,
        checkpoint_every=1000,
    ),
}

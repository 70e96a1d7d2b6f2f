"""affective-music: "Learning Affective Correspondence between Music and Image" (Verma, Dhekane, Guha, ICASSP 2019,
arXiv 1904.00150): ACP-Net and its baselines, a torch log-mel front end, a procedural IMAC substitute, a loader for
the real IMAC layout, and cross-modal retrieval with faiss.

from affective_music import ACPNet, ConvTower, LogMel

mel = LogMel(sample_rate=8000, n_fft=512, hop_length=512, n_mels=32)
net = ACPNet(ConvTower(1), ConvTower(3))
logits = net(mel(waves)[:, None], images)      # [B, 2]: index 1 = same emotion
"""

from .frontend import LogMel, mel_filterbank, spectrogram_image
from .imac import load_imac
from .models import ACPCosine, ACPNet, ConvTower, InputNorm, L3Net, build, timm_tower
from .pairs import fixed_pairs, sample_pairs, split_items, stratified_split
from .retrieval import average_precision, build_index, evaluate, precision_at_k, recall_at_k
from .synth import (
    EMOTIONS,
    SynthSpec,
    hsv_histogram,
    mel_statistics,
    observed_labels,
    synth_images,
    synth_music,
)

__all__ = [
    "EMOTIONS",
    "ACPCosine",
    "ACPNet",
    "ConvTower",
    "InputNorm",
    "L3Net",
    "LogMel",
    "SynthSpec",
    "average_precision",
    "build",
    "build_index",
    "evaluate",
    "fixed_pairs",
    "hsv_histogram",
    "load_imac",
    "mel_filterbank",
    "mel_statistics",
    "observed_labels",
    "precision_at_k",
    "recall_at_k",
    "sample_pairs",
    "spectrogram_image",
    "split_items",
    "stratified_split",
    "synth_images",
    "synth_music",
    "timm_tower",
]

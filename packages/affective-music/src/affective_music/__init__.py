"""affective-music: "Learning Affective Correspondence between Music and Image" (Verma, Dhekane, Guha, ICASSP 2019,
arXiv 1904.00150): ACP-Net and its baselines, a torch log-mel front end, a procedural IMAC substitute, a loader for
the real IMAC layout, and cross-modal retrieval with faiss.

from affective_music import ACPNet, ConvTower, LogMel

mel = LogMel(sample_rate=8000, n_fft=512, hop_length=512, n_mels=32)
net = ACPNet(ConvTower(1), ConvTower(3))
logits = net(mel(waves)[:, None], images)      # [B, 2]: index 1 = same emotion
"""

from paperkit.lazy import lazy_exports

# Each name is imported on first use, so that `import affective_music` and `train --help` load no torch.
__getattr__, __dir__, __all__ = lazy_exports(
    __name__,
    {
        ".frontend": ["LogMel", "mel_filterbank", "spectrogram_image"],
        ".imac": ["load_imac"],
        ".models": ["ACPCosine", "ACPNet", "ConvTower", "InputNorm", "L3Net", "build", "timm_tower"],
        ".pairs": ["fixed_pairs", "sample_pairs", "split_items", "stratified_split"],
        ".retrieval": ["average_precision", "build_index", "evaluate", "precision_at_k", "recall_at_k"],
        ".synth": [
            "EMOTIONS",
            "SynthSpec",
            "hsv_histogram",
            "mel_statistics",
            "observed_labels",
            "synth_images",
            "synth_music",
        ],
    },
)

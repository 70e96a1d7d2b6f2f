"""attn2mamba: "Attention to Mamba: A Recipe for Cross-Architecture Distillation" (Moudgil et al., arXiv
2604.14191), reconstructed in pure PyTorch.

A GPT-NeoX/Pythia teacher (:class:`GPTNeoX`, :func:`load_gpt_neox`) is distilled in two stages: stage 1 replaces
each softmax attention by Hedgehog linear attention (:class:`HedgehogLM`, :func:`stage1_loss`); stage 2 maps each
stage-1 layer into a Mamba-2 (SSD) mixer that starts out computing the same function
(:func:`mamba_from_hedgehog`), then trains the whole :class:`MambaLM` with cross-entropy plus KL to the teacher
(:func:`distill_loss`). :func:`generate` samples from all three.
"""

from paperkit.lazy import lazy_exports

# Each name is imported on first use, so that `import attn2mamba` and `train --help` load no torch.
__getattr__, __dir__, __all__ = lazy_exports(
    __name__,
    {
        ".kernels": None,
        ".convert": ["mamba_from_hedgehog"],
        ".generate": ["generate"],
        ".decoding": ["MambaStep", "StaticKV", "TeacherStep"],
        ".hedgehog": ["HedgehogAttention", "HedgehogConfig", "HedgehogLM", "Stage1Loss", "stage1_loss"],
        ".linear_attention": [
            "HedgehogFeatureMap",
            "linear_attention_chunked",
            "linear_attention_quadratic",
            "linear_attention_recurrent",
        ],
        ".lm": ["DecoderLM", "LMConfig", "ModelInputError"],
        ".losses": ["distill_loss"],
        ".mamba": ["Mamba2Mixer", "MambaConfig", "MambaLM"],
        ".ssd": ["ssd_chunked", "ssd_recurrent", "ssd_step"],
        ".llama": ["Llama", "load_llama"],
        ".teacher": ["CheckpointError", "GPTNeoX", "load_gpt_neox", "save_gpt_neox"],
    },
)

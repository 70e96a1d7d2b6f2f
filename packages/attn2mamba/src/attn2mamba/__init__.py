"""attn2mamba: "Attention to Mamba: A Recipe for Cross-Architecture Distillation" (Moudgil et al., arXiv
2604.14191), reconstructed in pure PyTorch.

A GPT-NeoX/Pythia teacher (:class:`GPTNeoX`, :func:`load_gpt_neox`) is distilled in two stages: stage 1 replaces
each softmax attention by Hedgehog linear attention (:class:`HedgehogLM`, :func:`stage1_loss`); stage 2 maps each
stage-1 layer into a Mamba-2 (SSD) mixer that starts out computing the same function
(:func:`mamba_from_hedgehog`), then trains the whole :class:`MambaLM` with cross-entropy plus KL to the teacher
(:func:`distill_loss`). :func:`generate` samples from all three.
"""

from . import kernels
from .convert import mamba_from_hedgehog
from .generate import generate
from .hedgehog import HedgehogAttention, HedgehogConfig, HedgehogLM, Stage1Loss, stage1_loss
from .linear_attention import (
    HedgehogFeatureMap,
    linear_attention_chunked,
    linear_attention_quadratic,
    linear_attention_recurrent,
)
from .lm import DecoderLM, LMConfig, ModelInputError
from .losses import distill_loss
from .mamba import Mamba2Mixer, MambaConfig, MambaLM
from .ssd import ssd_chunked, ssd_recurrent, ssd_step
from .teacher import CheckpointError, GPTNeoX, load_gpt_neox, save_gpt_neox

__all__ = [
    "CheckpointError",
    "DecoderLM",
    "GPTNeoX",
    "HedgehogAttention",
    "HedgehogConfig",
    "HedgehogFeatureMap",
    "HedgehogLM",
    "LMConfig",
    "Mamba2Mixer",
    "MambaConfig",
    "MambaLM",
    "ModelInputError",
    "Stage1Loss",
    "distill_loss",
    "generate",
    "kernels",
    "linear_attention_chunked",
    "linear_attention_quadratic",
    "linear_attention_recurrent",
    "load_gpt_neox",
    "mamba_from_hedgehog",
    "save_gpt_neox",
    "ssd_chunked",
    "ssd_recurrent",
    "ssd_step",
    "stage1_loss",
]

"""Optional CUDA kernels (the ``cuda`` extra: mamba-ssm, causal-conv1d, flash-attn), imported lazily.

Nothing here is needed: every kernel has a pure-PyTorch path that is the reference. A kernel is used only when
``use_kernels`` is ``"auto"``, the tensors are on CUDA and the package imports; tests check each one against the
torch path and skip without CUDA.
"""

from __future__ import annotations

import functools

import torch


@functools.cache
def mamba_chunk_scan():
    """mamba-ssm's fused SSD scan (``mamba_chunk_scan_combined``), or None."""
    try:
        from mamba_ssm.ops.triton.ssd_combined import mamba_chunk_scan_combined
    except Exception:  # ImportError, or a build without its CUDA extension
        return None
    return mamba_chunk_scan_combined


@functools.cache
def causal_conv1d():
    """causal-conv1d's fused depthwise causal convolution (``causal_conv1d_fn``), or None."""
    try:
        from causal_conv1d import causal_conv1d_fn
    except Exception:
        return None
    return causal_conv1d_fn


@functools.cache
def flash_attention():
    """flash-attn's ``flash_attn_func``, or None. (On CUDA, SDPA already dispatches to FlashAttention.)"""
    try:
        from flash_attn import flash_attn_func
    except Exception:
        return None
    return flash_attn_func


def wanted(mode: str, t: torch.Tensor, kernel) -> bool:
    return mode == "auto" and t.is_cuda and kernel() is not None


def available() -> dict[str, bool]:
    return {
        "mamba_ssm": mamba_chunk_scan() is not None,
        "causal_conv1d": causal_conv1d() is not None,
        "flash_attn": flash_attention() is not None,
        "cuda": torch.cuda.is_available(),
    }

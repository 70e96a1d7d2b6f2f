"""A Llama-family teacher (RMSNorm, SwiGLU, grouped-query attention, rotary) from a local Hugging Face folder.

The model is the package's teacher (:class:`attn2mamba.GPTNeoX`) with ``LMConfig(arch="llama")``: the blocks
are sequential (``x + attn(norm(x))``, then ``+ mlp(norm(.))``), the norms are RMSNorm, the MLP is
``down_proj(silu(gate_proj(x)) * up_proj(x))``, attention has separate ``q_proj, k_proj, v_proj`` with
``num_key_value_heads`` key/value heads (each serving ``num_attention_heads / num_key_value_heads`` consecutive
query heads) and rotary embeddings on the whole head (the rotate-half form, as GPT-NeoX). Stage 1 and the Mamba
conversion take it as they take a GPT-NeoX (:func:`attn2mamba.mamba_from_hedgehog` maps the shared keys to
grouped B). Only the default rope is read (no Llama-3 frequency scaling: a clear error instead).

    teacher = load_llama("path/to/folder")       # config.json + *.safetensors; never downloads
"""

from __future__ import annotations

from pathlib import Path

import torch

from .lm import LMConfig
from .teacher import CheckpointError, GPTNeoX, load_hf_folder


class Llama(GPTNeoX):
    """A Llama teacher: :class:`GPTNeoX`'s softmax-attention LM on an ``arch="llama"`` config."""

    kind = "llama"

    def __init__(self, cfg: LMConfig):
        if cfg.arch != "llama":
            raise ValueError(f"Llama needs LMConfig(arch='llama'), got arch={cfg.arch!r}")
        super().__init__(cfg)


def config_from_hf_llama(d: dict) -> LMConfig:
    """An :class:`LMConfig` from a Hugging Face Llama ``config.json`` (``rope_theta`` or ``rope_parameters``)."""
    if d.get("model_type") != "llama":
        raise CheckpointError(f"config.json describes a {d.get('model_type')!r} model, not llama")
    rope = d.get("rope_parameters") or d.get("rope_scaling") or {}
    kind = rope.get("rope_type", rope.get("type", "default"))
    if kind not in ("default", None):
        raise CheckpointError(f"rope type {kind!r} is not supported (only the default rope)")
    try:
        hidden, heads = int(d["hidden_size"]), int(d["num_attention_heads"])
        head_dim = d.get("head_dim")
        if head_dim is not None and int(head_dim) * heads != hidden:
            raise CheckpointError(
                f"head_dim {head_dim} x {heads} heads != hidden_size {hidden}: not supported"
            )
        return LMConfig(
            arch="llama",
            vocab_size=int(d["vocab_size"]),
            hidden_size=hidden,
            num_layers=int(d["num_hidden_layers"]),
            num_heads=heads,
            num_kv_heads=int(d.get("num_key_value_heads") or heads),
            intermediate_size=int(d["intermediate_size"]),
            rotary_pct=float(rope.get("partial_rotary_factor", 1.0)),
            rotary_base=float(rope.get("rope_theta", d.get("rope_theta", 10000.0))),
            max_seq_len=int(d.get("max_position_embeddings", 2048)),
            layer_norm_eps=float(d.get("rms_norm_eps", 1e-6)),
            parallel_residual=False,
            hidden_act=str(d.get("hidden_act", "silu")),
            tie_embeddings=bool(d.get("tie_word_embeddings", False)),
            attention_bias=bool(d.get("attention_bias", False)),
            mlp_bias=bool(d.get("mlp_bias", False)),
        )
    except KeyError as e:
        raise CheckpointError(f"config.json lacks {e.args[0]!r}") from None
    except ValueError as e:
        raise CheckpointError(f"config.json: {e}") from None


def _hf_to_ours(key: str) -> str | None:
    if key.endswith("rotary_emb.inv_freq"):
        return None
    if key == "lm_head.weight":
        return "embed_out.weight"
    if key.startswith("model."):
        key = key[len("model.") :]
    if key == "embed_tokens.weight":
        return "embed_in.weight"
    if key.startswith("norm."):
        return "final_layer_norm." + key[len("norm.") :]
    key = key.replace("layers.", "blocks.", 1) if key.startswith("layers.") else key
    return key.replace(".self_attn.o_proj.", ".mixer.dense.").replace(".self_attn.", ".mixer.")


def load_llama(
    path: str | Path, *, dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu"
) -> Llama:
    """Load a Llama model from a local folder with ``config.json`` and ``*.safetensors`` (one file or shards with
    ``model.safetensors.index.json``). Raises :class:`CheckpointError` with a one-line reason."""
    return load_hf_folder(path, "Llama", config_from_hf_llama, Llama, _hf_to_ours, dtype=dtype, device=device)

"""The decoder skeleton the three models share: embeddings, GPT-NeoX or Llama blocks around a sequence mixer, head.

A GPT-NeoX (Pythia) block is ``x + mixer(LN1(x)) + MLP(LN2(x))`` with a parallel residual, or the sequential
``x' = x + mixer(LN1(x)); x' + MLP(LN2(x'))`` without it. A Llama block (``arch="llama"``) is the sequential form
with RMSNorm instead of LayerNorm, a SwiGLU MLP (``down(silu(gate(x)) * up(x))``) and attention projections
``q_proj, k_proj, v_proj`` with ``num_kv_heads <= num_heads`` key/value heads (grouped-query attention). The teacher's mixer is softmax attention, stage 1's is
Hedgehog linear attention, the final model's is a Mamba-2 (SSD) mixer; everything else (embeddings, layer norms,
MLPs, head) is the same module, which is what lets stage 2 copy the teacher's weights one to one.

Every mixer has ``forward(h, state, pos) -> (out, state)``: ``state=None`` is a full causal pass; otherwise the
mixer continues from ``state`` (a KV cache, a linear-attention state, an SSM + convolution state) and returns the
new one, which is how :func:`attn2mamba.generate` decodes. ``pos`` is an int (every row at the same position), or,
after a left-padded prompt, a tensor ``[batch]`` of each row's own position (``mask`` ``[batch, L]``, True for real
tokens, is then passed with the prompt: padded positions leave every state as it was).
"""

from __future__ import annotations

import functools
import json
import math
from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


class ModelInputError(ValueError):
    """Input a model cannot take (token ids outside its vocabulary, a sequence beyond its length limit)."""


@dataclass
class LMConfig:
    """The backbone shared by teacher, stage-1 and Mamba models (GPT-NeoX field meanings; ``arch="llama"``: RMSNorm,
    SwiGLU, separate q/k/v projections with ``num_kv_heads`` key/value heads, ``layer_norm_eps`` is RMSNorm's eps)."""

    vocab_size: int = 256
    hidden_size: int = 128
    num_layers: int = 4
    num_heads: int = 4
    intermediate_size: int = 512
    rotary_pct: float = 0.25  # fraction of each head's dims that get rotary embeddings (teacher only)
    rotary_base: float = 10000.0
    max_seq_len: int = 2048
    layer_norm_eps: float = 1e-5
    parallel_residual: bool = True
    hidden_act: str = "gelu"
    tie_embeddings: bool = False
    attention_bias: bool = True
    arch: str = "gpt-neox"  # or "llama"
    num_kv_heads: int | None = None  # llama: key/value heads (grouped-query attention); None: num_heads
    mlp_bias: bool = True  # llama checkpoints have none

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads

    @property
    def kv_heads(self) -> int:
        return self.num_kv_heads or self.num_heads

    def __post_init__(self) -> None:
        if self.hidden_size % self.num_heads:
            raise ValueError(f"hidden_size {self.hidden_size} is not divisible by num_heads {self.num_heads}")
        if self.arch not in ARCHS:
            raise ValueError(f"arch {self.arch!r} is not one of {', '.join(ARCHS)}")
        if self.num_heads % self.kv_heads:
            raise ValueError(f"num_heads {self.num_heads} is not divisible by num_kv_heads {self.kv_heads}")
        if self.arch == "gpt-neox" and self.kv_heads != self.num_heads:
            raise ValueError("grouped-query attention (num_kv_heads < num_heads) needs arch='llama'")
        if self.hidden_act not in ACTIVATIONS:
            raise ValueError(f"hidden_act {self.hidden_act!r} is not one of {', '.join(ACTIVATIONS)}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> LMConfig:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


ARCHS = ("gpt-neox", "llama")

ACTIVATIONS = {
    "gelu": lambda x: F.gelu(x),
    "gelu_new": lambda x: F.gelu(x, approximate="tanh"),
    "gelu_fast": lambda x: F.gelu(x, approximate="tanh"),
    "gelu_pytorch_tanh": lambda x: F.gelu(x, approximate="tanh"),
    "relu": F.relu,
    "silu": F.silu,
}


class MLP(nn.Module):
    def __init__(self, cfg: LMConfig):
        super().__init__()
        self.dense_h_to_4h = nn.Linear(cfg.hidden_size, cfg.intermediate_size)
        self.dense_4h_to_h = nn.Linear(cfg.intermediate_size, cfg.hidden_size)
        self.act = ACTIVATIONS[cfg.hidden_act]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dense_4h_to_h(self.act(self.dense_h_to_4h(x)))


class GatedMLP(nn.Module):
    """Llama's SwiGLU MLP: ``down_proj(act(gate_proj(x)) * up_proj(x))``."""

    def __init__(self, cfg: LMConfig):
        super().__init__()
        self.gate_proj = nn.Linear(cfg.hidden_size, cfg.intermediate_size, bias=cfg.mlp_bias)
        self.up_proj = nn.Linear(cfg.hidden_size, cfg.intermediate_size, bias=cfg.mlp_bias)
        self.down_proj = nn.Linear(cfg.intermediate_size, cfg.hidden_size, bias=cfg.mlp_bias)
        self.act = ACTIVATIONS[cfg.hidden_act]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(self.act(self.gate_proj(x)) * self.up_proj(x))


class RMSNorm(nn.Module):
    """Llama's RMSNorm: ``weight * x / sqrt(mean(x^2) + eps)``, normalised in float32 at least."""

    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def reset_special_parameters(self) -> None:
        nn.init.ones_(self.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xf = x.to(torch.promote_types(x.dtype, torch.float32))
        return self.weight * (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)).to(x.dtype)


def make_norm(cfg: LMConfig) -> nn.Module:
    if cfg.arch == "llama":
        return RMSNorm(cfg.hidden_size, cfg.layer_norm_eps)
    return nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)


class AttentionProjections(nn.Module):
    """The teacher attention's input and output projections, which stage 1 and stage 2 reuse: GPT-NeoX's fused
    ``query_key_value`` (laid out per head as ``[q | k | v]``), or Llama's ``q_proj, k_proj, v_proj`` with
    ``num_kv_heads`` key/value heads; the output projection is ``dense`` in both (Llama's ``o_proj``)."""

    def __init__(self, cfg: LMConfig):
        super().__init__()
        self.num_heads, self.num_kv_heads, self.head_dim = cfg.num_heads, cfg.kv_heads, cfg.head_dim
        bias = cfg.attention_bias
        if cfg.arch == "llama":
            self.q_proj = nn.Linear(cfg.hidden_size, cfg.num_heads * cfg.head_dim, bias=bias)
            self.k_proj = nn.Linear(cfg.hidden_size, cfg.kv_heads * cfg.head_dim, bias=bias)
            self.v_proj = nn.Linear(cfg.hidden_size, cfg.kv_heads * cfg.head_dim, bias=bias)
        else:
            self.query_key_value = nn.Linear(cfg.hidden_size, 3 * cfg.hidden_size, bias=bias)
        self.dense = nn.Linear(cfg.num_heads * cfg.head_dim, cfg.hidden_size, bias=bias)

    def project(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Pre-rotary ``q [b, heads, L, P]`` and ``k, v [b, kv_heads, L, P]``."""
        b, L, _ = h.shape
        P = self.head_dim
        if hasattr(self, "query_key_value"):
            qkv = self.query_key_value(h).view(b, L, self.num_heads, 3 * P).transpose(1, 2)
            return qkv.chunk(3, dim=-1)
        q = self.q_proj(h).view(b, L, self.num_heads, P).transpose(1, 2)
        k = self.k_proj(h).view(b, L, self.num_kv_heads, P).transpose(1, 2)
        v = self.v_proj(h).view(b, L, self.num_kv_heads, P).transpose(1, 2)
        return q, k, v

    def qkv_weights(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """``[(W_q [heads, P, d], b_q [heads, P]), (W_k, b_k), (W_v, b_v)]`` (key/value: ``kv_heads``); zero
        biases where the projection has none."""
        P = self.head_dim
        if hasattr(self, "query_key_value"):
            lin = self.query_key_value
            d = lin.in_features
            W = lin.weight.view(self.num_heads, 3, P, d)
            b = (
                lin.bias.view(self.num_heads, 3, P)
                if lin.bias is not None
                else W.new_zeros(self.num_heads, 3, P)
            )
            return [(W[:, j], b[:, j]) for j in range(3)]
        out = []
        for lin, n in (
            (self.q_proj, self.num_heads),
            (self.k_proj, self.num_kv_heads),
            (self.v_proj, self.num_kv_heads),
        ):
            W = lin.weight.view(n, P, lin.in_features)
            out.append((W, lin.bias.view(n, P) if lin.bias is not None else W.new_zeros(n, P)))
        return out


def repeat_kv(t: torch.Tensor, heads: int) -> torch.Tensor:
    """``[b, kv_heads, ...]`` -> ``[b, heads, ...]``: each key/value head serves ``heads / kv_heads`` query heads
    (consecutive ones, as in Llama)."""
    r = heads // t.shape[1]
    return t if r == 1 else t.repeat_interleave(r, dim=1)


class Block(nn.Module):
    def __init__(self, cfg: LMConfig, mixer: nn.Module):
        super().__init__()
        self.parallel = cfg.parallel_residual
        self.input_layernorm = make_norm(cfg)
        self.post_attention_layernorm = make_norm(cfg)
        self.mixer = mixer
        self.mlp = GatedMLP(cfg) if cfg.arch == "llama" else MLP(cfg)

    def forward(
        self, x: torch.Tensor, state: Any = None, pos: Any = 0, mask=None
    ) -> tuple[torch.Tensor, Any]:
        h = self.input_layernorm(x)
        a, state = self.mixer(h, state, pos) if mask is None else self.mixer(h, state, pos, mask=mask)
        if self.parallel:
            return x + a + self.mlp(self.post_attention_layernorm(x)), state
        x = x + a
        return x + self.mlp(self.post_attention_layernorm(x)), state


@dataclass
class LMState:
    """Decoding state of a whole model: tokens consumed so far (padding included), one mixer state per layer, and
    after a left-padded prompt each row's number of padding tokens (``offset [batch]``, on the model's device)."""

    pos: int
    layers: list
    offset: torch.Tensor | None = None

    def positions(self) -> int | torch.Tensor:
        """The next token's position: ``pos``, or per row ``pos - offset`` after a left-padded prompt."""
        return self.pos if self.offset is None else self.pos - self.offset


class DecoderLM(nn.Module):
    """Token embeddings, ``num_layers`` blocks around the given mixers, final LayerNorm, output head.

    ``model(ids)`` returns logits ``[batch, length, vocab]``; ``model.step(ids, state)`` continues from a
    decoding state (``model.init_state()``) and returns ``(logits, state)``.
    """

    kind = "lm"
    # the teacher is limited to the positions it was trained on (max_seq_len); recurrent models are not
    length_limited = True

    def __init__(self, cfg: LMConfig, mixers: list[nn.Module]):
        super().__init__()
        if len(mixers) != cfg.num_layers:
            raise ValueError(f"{len(mixers)} mixers for {cfg.num_layers} layers")
        self.config = cfg
        self.embed_in = nn.Embedding(cfg.vocab_size, cfg.hidden_size)
        self.blocks = nn.ModuleList(Block(cfg, m) for m in mixers)
        self.final_layer_norm = make_norm(cfg)
        self.embed_out = nn.Linear(cfg.hidden_size, cfg.vocab_size, bias=False)
        if cfg.tie_embeddings:
            self.embed_out.weight = self.embed_in.weight

    # -- input checks -----------------------------------------------------------------------------------------

    def check_input(self, ids: torch.Tensor, pos: int = 0) -> None:
        if ids.dim() != 2 or ids.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8):
            raise ModelInputError(
                f"token ids must be an integer tensor [batch, length], got {tuple(ids.shape)}"
            )
        if ids.numel() == 0:
            raise ModelInputError("empty input: at least one token is needed")
        end = pos + ids.shape[1]
        if self.length_limited and end > self.config.max_seq_len:
            raise ModelInputError(
                f"sequence of {end} tokens is longer than the model's limit of "
                f"{self.config.max_seq_len} (max_seq_len)"
            )
        lo, hi = int(ids.min()), int(ids.max())
        if lo < 0 or hi >= self.config.vocab_size:
            bad = hi if hi >= self.config.vocab_size else lo
            raise ModelInputError(
                f"token id {bad} is outside the model's vocabulary of {self.config.vocab_size}: "
                "tokenizer and model do not match"
            )

    # -- forward ----------------------------------------------------------------------------------------------

    def hidden(
        self,
        ids: torch.Tensor,
        state: LMState | None = None,
        mask: torch.Tensor | None = None,
        check: bool = True,
    ) -> tuple[torch.Tensor, LMState | None]:
        pos = 0 if state is None else state.pos
        if check:
            self.check_input(ids, pos)
        elif self.length_limited and pos + ids.shape[1] > self.config.max_seq_len:
            self.check_input(ids, pos)  # the one-line length error
        rpos = 0 if state is None else state.positions()
        x = self.embed_in(ids.long())
        new_layers = []
        for i, block in enumerate(self.blocks):
            x, s = block(x, None if state is None else state.layers[i], rpos, mask)
            new_layers.append(s)
        x = self.final_layer_norm(x)
        if state is None:
            return x, None
        return x, LMState(pos + ids.shape[1], new_layers, state.offset)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.embed_out(self.hidden(ids)[0])

    def init_state(self, batch: int = 1) -> LMState:
        p = next(self.parameters())
        return LMState(0, [b.mixer.init_state(batch, device=p.device, dtype=p.dtype) for b in self.blocks])

    def step(
        self, ids: torch.Tensor, state: LMState, mask: torch.Tensor | None = None, check: bool = True
    ) -> tuple[torch.Tensor, LMState]:
        """Continue decoding: logits for ``ids`` given everything consumed so far, and the new state.

        ``mask [batch, L]`` (True: a real token) marks left padding in the first call (a batch of prompts of
        different lengths): padded positions change no state (no key in the KV cache is attended, no input enters
        a recurrent state) and each row's real tokens take positions ``0, 1, ...`` of their own, so every row
        decodes as it would alone. The logits at padded positions mean nothing. ``check=False`` skips the range
        check of the ids (two reductions and a host sync per call), for ids the model sampled itself."""
        if mask is not None:
            mask = mask.to(device=ids.device, dtype=torch.bool)
            if mask.shape != ids.shape:
                raise ModelInputError(f"mask {tuple(mask.shape)} does not match ids {tuple(ids.shape)}")
            if state.pos != 0 or state.offset is not None:
                raise ModelInputError("a padding mask is taken only with the first (prompt) call")
            if bool((mask[:, :-1] & ~mask[:, 1:]).any()) or not bool(mask[:, -1].all()):
                raise ModelInputError("padding must be on the left, and every row needs at least one token")
            state = LMState(state.pos, state.layers, (~mask).sum(1))
        x, state = self.hidden(ids, state, mask, check)
        return self.embed_out(x), state

    def decode_step(self):
        """The one-token step :func:`attn2mamba.generate` uses after the prompt: ``step(ids [b, 1], state) ->
        (logits, state)``, here :meth:`step` without the range check of ids the model sampled itself (the Mamba
        LM returns its lean :class:`attn2mamba.decoding.MambaStep`)."""
        return functools.partial(self.step, check=False)

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    # -- initialisation ---------------------------------------------------------------------------------------

    def init_weights(self, std: float = 0.02) -> None:
        """GPT-NeoX-style random init: normal(0, std) for linear and embedding weights, zero biases, and the
        projections into the residual stream scaled by 1/sqrt(2 * layers). Mixers then re-init their own
        special parameters (``reset_special_parameters``)."""
        resid = std / math.sqrt(2 * self.config.num_layers)
        for name, m in self.named_modules():
            if isinstance(m, nn.Linear):
                last = name.split(".")[-1]
                nn.init.normal_(
                    m.weight,
                    std=resid if last in ("dense", "dense_4h_to_h", "out_proj", "down_proj") else std,
                )
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Embedding):
                nn.init.normal_(m.weight, std=std)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        for m in self.modules():
            if m is not self and hasattr(m, "reset_special_parameters"):
                m.reset_special_parameters()


def config_json(model: DecoderLM, extra: dict | None = None) -> str:
    return json.dumps({"kind": model.kind, **model.config.to_dict(), **(extra or {})}, indent=2)

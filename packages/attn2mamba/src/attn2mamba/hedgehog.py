"""Stage 1: the teacher with every softmax attention replaced by Hedgehog linear attention.

Each layer keeps the teacher's projections (GPT-NeoX's ``query_key_value`` or Llama's ``q_proj, k_proj, v_proj``,
and ``dense``) and adds two Hedgehog feature maps (``phi_q``, ``phi_k``,
:class:`~attn2mamba.linear_attention.HedgehogFeatureMap`; with grouped-query attention ``phi_k`` has one map per
key/value head, shared by that head's queries as the keys are). With ``rotary=True`` they
read the queries and keys **after** the teacher's rotary embedding, as LoLCATs does (``phi(R_t q_t)``): the
teacher's attention is positional and a map of pre-rotary q, k cannot see position. Stage 2 then carries the
same rotation on the Mamba's B and C. With ``rotary=False`` the maps read the pre-rotary q, k. Normalisation
(``normalize``):

- ``"rms"`` (default; the notes' reading of the paper's "additional normalization"): drop the denominator and
  apply a per-head RMSNorm with a learned gain to the numerator, ``y_t = RMSNorm(phi(q_t)^T S_t)``;
- ``"ratio"``: classic Hedgehog, ``y_t = phi(q_t)^T S_t / (phi(q_t)^T z_t + eps)``.

Stage-1 training (:func:`stage1_loss`) fits only the feature maps and the norm gains: layer-wise terms with every
layer fed the teacher's own inputs (one teacher pass records them, all layers train in parallel), and/or an
end-to-end term, KL from the teacher's logits to the stage-1 model's own.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .linear_attention import (
    HedgehogFeatureMap,
    linear_attention_chunked,
    linear_attention_recurrent,
    linear_attention_weights,
)
from .lm import AttentionProjections, DecoderLM, LMConfig, repeat_kv
from .teacher import Rotary

NORMALIZE = ("rms", "ratio")


@dataclass
class HedgehogConfig:
    feature_dim: int = 32  # f: each feature map has 2f features (the Mamba state size in stage 2)
    normalize: str = "rms"
    feature_init: str = "identity"
    # feature maps on the rotary-embedded q, k (the teacher's rotary) instead of the pre-rotary ones
    rotary: bool = False
    chunk_size: int = 64
    norm_eps: float = 1e-5
    ratio_eps: float = 1e-6

    def __post_init__(self) -> None:
        if self.normalize not in NORMALIZE:
            raise ValueError(f"normalize must be one of {', '.join(NORMALIZE)}, got {self.normalize!r}")


def rms_norm_heads(y: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """RMSNorm over the last dim of ``y [..., heads, P]`` with gain ``weight [heads, P]``."""
    yf = y.to(torch.promote_types(y.dtype, torch.float32))  # fp32 at least; float64 stays float64
    return (yf * torch.rsqrt(yf.pow(2).mean(-1, keepdim=True) + eps)).to(y.dtype) * weight


class HedgehogAttention(AttentionProjections):
    """Hedgehog linear attention in a GPT-NeoX or Llama layer (``forward(h, state, pos) -> (out, state)``)."""

    def __init__(self, cfg: LMConfig, hh: HedgehogConfig):
        super().__init__(cfg)
        self.hh = hh
        self.feature_q = HedgehogFeatureMap(cfg.num_heads, cfg.head_dim, hh.feature_dim, hh.feature_init)
        self.feature_k = HedgehogFeatureMap(cfg.kv_heads, cfg.head_dim, hh.feature_dim, hh.feature_init)
        self.rotary = Rotary(int(cfg.head_dim * cfg.rotary_pct), cfg.rotary_base) if hh.rotary else None
        if hh.normalize == "rms":
            self.norm_weight = nn.Parameter(torch.ones(cfg.num_heads, cfg.head_dim))

    def reset_special_parameters(self) -> None:
        if self.hh.normalize == "rms":
            nn.init.ones_(self.norm_weight)

    def features(self, q: torch.Tensor, k: torch.Tensor, pos=0) -> tuple[torch.Tensor, torch.Tensor]:
        """``phi_q(q), phi_k(k)`` of the pre-rotary ``q, k`` at positions ``pos, pos + 1, ...``."""
        if self.rotary is not None:
            q, k = self.rotary(q, k, pos)
        return self.feature_q(q), self.feature_k(k)

    def mix(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        state: torch.Tensor | None = None,
        pos=0,
        mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Linear attention on ``q [b, heads, L, head_dim]``, ``k, v [b, kv_heads, L, head_dim]`` (pre-rotary);
        returns heads concatenated ``[b, L, hidden]`` (before ``dense``) and the state
        ``[b, heads, 2f, head_dim (+1 with ratio)]``."""
        qf, kf = self.features(q, k, pos)
        if mask is not None:  # padding keys add nothing to the state (numerator nor denominator)
            kf = kf * mask[:, None, :, None].to(kf.dtype)
        kf, v = repeat_kv(kf, self.num_heads), repeat_kv(v, self.num_heads)
        if self.hh.normalize == "ratio":
            v = torch.cat((v, torch.ones_like(v[..., :1])), dim=-1)
        if state is not None and q.shape[2] == 1:
            y, state = linear_attention_recurrent(qf, kf, v, initial_state=state)
        else:
            y, state = linear_attention_chunked(qf, kf, v, chunk_size=self.hh.chunk_size, initial_state=state)
        if self.hh.normalize == "ratio":
            y = y[..., :-1] / (y[..., -1:] + self.hh.ratio_eps)
        else:
            y = rms_norm_heads(y.transpose(1, 2), self.norm_weight, self.hh.norm_eps).transpose(1, 2)
        b, _, L, _ = y.shape
        return y.transpose(1, 2).reshape(b, L, -1), state

    def forward(self, h: torch.Tensor, state: Any = None, pos=0, mask: torch.Tensor | None = None):
        q, k, v = self.project(h)
        o, new_state = self.mix(q, k, v, state, pos, mask)
        return self.dense(o), new_state

    def init_state(self, batch: int, device=None, dtype=None) -> torch.Tensor:
        extra = 1 if self.hh.normalize == "ratio" else 0
        return torch.zeros(
            batch, self.num_heads, 2 * self.hh.feature_dim, self.head_dim + extra, device=device, dtype=dtype
        )

    def attention_weights(self, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        """The student's normalised causal attention weights (for the stage-1 cross-entropy)."""
        qf, kf = self.features(q, k)
        return linear_attention_weights(qf, repeat_kv(kf, self.num_heads))


class HedgehogLM(DecoderLM):
    """Stage 1: the teacher's backbone with Hedgehog linear attention. Build it with :meth:`from_teacher`."""

    kind = "hedgehog"
    length_limited = False  # a recurrent state: no positional limit

    def __init__(self, cfg: LMConfig, hh: HedgehogConfig | None = None):
        hh = hh or HedgehogConfig()
        super().__init__(cfg, [HedgehogAttention(cfg, hh) for _ in range(cfg.num_layers)])
        self.hedgehog = hh

    @classmethod
    def from_teacher(cls, teacher: DecoderLM, hh: HedgehogConfig | None = None) -> HedgehogLM:
        """Copy every teacher weight (projections, MLPs, norms, embeddings); feature maps start at their init."""
        p = next(teacher.parameters())
        model = cls(teacher.config, hh).to(device=p.device, dtype=p.dtype)
        missing, unexpected = model.load_state_dict(teacher.state_dict(), strict=False)
        if unexpected or any("feature_" not in k and "norm_weight" not in k for k in missing):
            raise ValueError(f"teacher and stage-1 model do not line up: {unexpected or missing}")
        return model

    def stage1_parameters(self) -> list[nn.Parameter]:
        """What stage 1 trains: the feature maps (and the RMSNorm gains); everything else stays frozen."""
        return [p for n, p in self.named_parameters() if "feature_" in n or "norm_weight" in n]

    def config_dict(self) -> dict:
        return {**self.config.to_dict(), "hedgehog": asdict(self.hedgehog)}


@dataclass
class Stage1Loss:
    """Weights of the stage-1 distillation terms, averaged over layers:

    - ``cosine``: ``1 - cos(student_out_t, teacher_out_t)`` per token, on each attention layer's output (after
      ``dense``; the paper's loss according to summaries);
    - ``mse``: ``|student_out - teacher_out|^2 / |teacher_out|^2`` (relative MSE; LoLCATs uses plain MSE);
    - ``xent``: Hedgehog's soft cross-entropy ``-sum_s A_ts log a_ts`` between the teacher's softmax weights and
      the student's normalised linear-attention weights (quadratic in length: for short sequences);
    - ``kl``: end to end, ``KL(teacher || stage-1 model)`` of the next-token distributions, the stage-1 model
      running on its own inputs (so a layer's error reaches the layers above it, which the layer-wise terms
      never see).
    """

    cosine: float = 1.0
    mse: float = 1.0
    xent: float = 0.0
    kl: float = 0.0


def stage1_loss(
    student: HedgehogLM,
    records: list[dict],
    weights: Stage1Loss,
    *,
    ids: torch.Tensor | None = None,
    teacher_logits: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """The stage-1 loss of ``student`` on the teacher's per-layer records and logits
    (:meth:`attn2mamba.GPTNeoX.attention_io`; ``ids`` and ``teacher_logits`` are needed when ``weights.kl > 0``);
    returns ``(loss, parts)``."""
    total = 0.0
    parts = {"cosine": 0.0, "mse": 0.0, "xent": 0.0, "kl": 0.0}
    if weights.kl:
        if ids is None or teacher_logits is None:
            raise ValueError("the end-to-end stage-1 term (kl > 0) needs ids and the teacher's logits")
        s = student(ids).float().flatten(0, -2)
        t = teacher_logits.float().flatten(0, -2)
        kl = F.kl_div(s.log_softmax(-1), t.log_softmax(-1), log_target=True, reduction="batchmean")
        total = weights.kl * kl
        parts["kl"] = kl.item()
    if not (weights.cosine or weights.mse or weights.xent):
        return total, parts
    n = len(records)
    for block, rec in zip(student.blocks, records):
        attn: HedgehogAttention = block.mixer
        target = rec["out"].float()
        loss = 0.0
        if weights.cosine or weights.mse:
            o, _ = attn.mix(rec["q"], rec["k"], rec["v"])
            out = attn.dense(o).float()
            if weights.cosine:
                cos = 1 - F.cosine_similarity(out, target, dim=-1).mean()
                loss = loss + weights.cosine * cos
                parts["cosine"] += cos.item() / n
            if weights.mse:
                mse = (out - target).pow(2).mean() / target.pow(2).mean().clamp_min(1e-12)
                loss = loss + weights.mse * mse
                parts["mse"] += mse.item() / n
        if weights.xent:
            a = attn.attention_weights(rec["q"], rec["k"])
            A = rec["weights"]
            xent = -(A * torch.log(a.clamp_min(1e-12))).sum(-1).mean()
            loss = loss + weights.xent * xent
            parts["xent"] += xent.item() / n
        total = total + loss / n
    return total, parts

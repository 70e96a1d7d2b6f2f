"""Stage 2's initialisation: a stage-1 Hedgehog model mapped into a Mamba model that computes the same function.

Per layer and head ``h`` (the teacher's projections give ``W_q, W_k, W_v`` with biases, zero where it has none;
the Hedgehog maps are ``phi_q(x) = pair(x U_q + c_q)``, ``phi_k(x) = pair(x U_k + c_k)``)::

    x rows of in_proj  <- W_v, b_v                                      (values to x)
    B rows of in_proj  <- U_k^T W_k,  U_k^T b_k + c_k                   (feature-mapped keys to B)
    C rows of in_proj  <- U_q^T W_q,  U_q^T b_q + c_q                   (feature-mapped queries to C)
    dt rows <- 0, dt_bias <- log(e - 1)                                 (dt = softplus(dt_bias) = 1)
    decay <- 0                                                          (A = 0: no forgetting)
    conv1d <- identity (last tap 1, others 0, bias 0);  x_mix <- 0      (no SiLU)
    gate_mix <- 0 (gate = 1);  D <- 0;  norm gain <- stage-1 RMSNorm gain;  out_proj <- dense

With ``rotary=True`` stage-1 maps (they read rotary-embedded q, k) the B and C rows get ``W_k``, ``W_q`` unchanged,
the Mamba rotates them with the teacher's rotary embedding, and its per-group maps get ``U_k, c_k`` and
``U_q, c_q``.

Grouped-query attention (a Llama teacher with ``num_kv_heads = G < H`` heads): the Mamba keeps one SSM head per
query head; the x rows of head ``h`` get the value rows of its key/value head ``h // (H / G)`` (repeated, as
MambaInLlama does), B has ``G`` groups (the shared keys: ``num_b_groups = G``) and C has ``H`` (one per query).

Then ``H_t = H_{t-1} + x_t B_t^T`` and ``y_t = H_t C_t`` is the stage-1 numerator ``phi(q_t)^T S_t`` exactly
(with ``normalize="ratio"`` the constant-1 channel of x gives the denominator). Embeddings, layer norms, MLPs and
the head are copied. The z rows of in_proj keep their random init, so the gate can learn once ``gate_mix`` moves.
"""

from __future__ import annotations

import math

import torch

from .hedgehog import HedgehogAttention, HedgehogLM
from .mamba import Mamba2Mixer, MambaConfig, MambaLM


@torch.no_grad()
def mamba_from_hedgehog(stage1: HedgehogLM, mamba: MambaConfig | None = None, *, seed: int = 0) -> MambaLM:
    """The stage-2 starting point: a :class:`MambaLM` whose outputs equal ``stage1``'s (up to float rounding).

    ``mamba`` may set conv_kernel, chunk_size, use_kernels and the random-init ranges; the sizes (heads, head
    dim, one group per head, feature dim, normalisation) are taken from ``stage1``.
    """
    cfg, hh = stage1.config, stage1.hedgehog
    base = mamba or MambaConfig()
    mc = MambaConfig(
        feature_dim=hh.feature_dim,
        num_heads=cfg.num_heads,
        head_dim=cfg.head_dim,
        num_groups=cfg.num_heads,
        num_b_groups=cfg.kv_heads,
        conv_kernel=base.conv_kernel,
        chunk_size=base.chunk_size,
        normalize=hh.normalize,
        norm_eps=hh.norm_eps,
        ratio_eps=hh.ratio_eps,
        dt_min=base.dt_min,
        dt_max=base.dt_max,
        decay_min=base.decay_min,
        decay_max=base.decay_max,
        use_kernels=base.use_kernels,
        rotary_dim=int(cfg.head_dim * cfg.rotary_pct) if hh.rotary else 0,
        rotary_base=cfg.rotary_base,
    )
    p = next(stage1.parameters())
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = MambaLM(cfg, mc)
        model.init_weights()  # only the z rows of in_proj keep these random values
    model = model.to(device=p.device, dtype=p.dtype)
    shared = {k: v for k, v in stage1.state_dict().items() if ".mixer." not in k}
    missing, unexpected = model.load_state_dict(shared, strict=False)
    if unexpected or any(".mixer." not in k for k in missing):
        raise ValueError(f"stage-1 and Mamba backbones do not line up: {unexpected or missing}")
    for src, dst in zip(stage1.blocks, model.blocks):
        _map_layer(src.mixer, dst.mixer)
    return model


def _map_layer(att: HedgehogAttention, mix: Mamba2Mixer) -> None:
    H, G, P, f = att.num_heads, att.num_kv_heads, att.head_dim, att.hh.feature_dim
    f64 = torch.float64
    (Wq, bq), (Wk, bk), (Wv, bv) = ((w.to(f64), b.to(f64)) for w, b in att.qkv_weights())  # [n, P, d], [n, P]
    d = Wq.shape[-1]

    def featured(W: torch.Tensor, b: torch.Tensor, fm) -> tuple[torch.Tensor, torch.Tensor]:
        U, c = fm.weight.to(f64), fm.bias.to(f64)  # [n, P, f], [n, f]
        w = torch.einsum("hpf,hpd->hfd", U, W).reshape(-1, d)
        bb = (torch.einsum("hpf,hp->hf", U, b) + c).reshape(-1)
        return w, bb

    di = H * P
    if mix.mc.rotary_dim:  # head-sized b, c: the raw projections; the maps move into the mixer
        wk, bk_ = Wk.reshape(G * P, d), bk.reshape(G * P)
        wq, bq_ = Wq.reshape(di, d), bq.reshape(di)
        f = P
        for src, dst in ((att.feature_k, mix.feature_b), (att.feature_q, mix.feature_c)):
            dst.weight.copy_(src.weight)
            dst.bias.copy_(src.bias)
    else:
        wq, bq_ = featured(Wq, bq, att.feature_q)
        wk, bk_ = featured(Wk, bk, att.feature_k)
    r = H // G  # query heads per key/value head: each value head's rows go to r SSM heads
    wv = Wv.repeat_interleave(r, dim=0).reshape(di, d)
    bv_ = bv.repeat_interleave(r, dim=0).reshape(di)
    rows_w = mix.in_proj.weight  # [z | x | B (G groups) | C (H groups) | dt]
    rows_b = mix.in_proj.bias
    dt_ = rows_w.dtype
    nb, nc = G * f, H * f
    rows_w[di : 2 * di] = wv.to(dt_)
    rows_b[di : 2 * di] = bv_.to(dt_)
    rows_w[2 * di : 2 * di + nb] = wk.to(dt_)
    rows_b[2 * di : 2 * di + nb] = bk_.to(dt_)
    rows_w[2 * di + nb : 2 * di + nb + nc] = wq.to(dt_)
    rows_b[2 * di + nb : 2 * di + nb + nc] = bq_.to(dt_)
    rows_w[2 * di + nb + nc :] = 0.0
    rows_b[2 * di + nb + nc :] = 0.0
    mix.dt_bias.fill_(math.log(math.expm1(1.0)))
    mix.decay.zero_()
    mix.conv1d.weight.zero_()
    mix.conv1d.weight[:, :, -1] = 1.0
    mix.conv1d.bias.zero_()
    mix.x_mix.zero_()
    mix.gate_mix.zero_()
    mix.D.zero_()
    if att.hh.normalize == "rms":
        mix.norm_weight.copy_(att.norm_weight)
    mix.out_proj.weight.copy_(att.dense.weight)
    if att.dense.bias is not None:
        mix.out_proj.bias.copy_(att.dense.bias)
    else:
        mix.out_proj.bias.zero_()

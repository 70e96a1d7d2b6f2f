"""Stage 2's initialisation: a stage-1 Hedgehog model mapped into a Mamba model that computes the same function.

Per layer and head ``h`` (GPT-NeoX's fused projection gives ``W_q, W_k, W_v`` with biases; the Hedgehog maps
are ``phi_q(x) = pair(x U_q + c_q)``, ``phi_k(x) = pair(x U_k + c_k)``)::

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
    H, P, f = att.num_heads, att.head_dim, att.hh.feature_dim
    d = att.query_key_value.in_features
    f64 = torch.float64
    W = att.query_key_value.weight.to(f64).view(H, 3, P, d)
    bias = att.query_key_value.bias
    b = bias.to(f64).view(H, 3, P) if bias is not None else torch.zeros(H, 3, P, dtype=f64, device=W.device)

    def featured(j: int, fm) -> tuple[torch.Tensor, torch.Tensor]:
        U, c = fm.weight.to(f64), fm.bias.to(f64)  # [H, P, f], [H, f]
        w = torch.einsum("hpf,hpd->hfd", U, W[:, j]).reshape(H * f, d)
        bb = (torch.einsum("hpf,hp->hf", U, b[:, j]) + c).reshape(H * f)
        return w, bb

    di = H * P
    if mix.mc.rotary_dim:  # head-sized b, c: the raw projections; the maps move into the mixer
        wk, bk = W[:, 1].reshape(di, d), b[:, 1].reshape(di)
        wq, bq = W[:, 0].reshape(di, d), b[:, 0].reshape(di)
        f = P
        for src, dst in ((att.feature_k, mix.feature_b), (att.feature_q, mix.feature_c)):
            dst.weight.copy_(src.weight)
            dst.bias.copy_(src.bias)
    else:
        wq, bq = featured(0, att.feature_q)
        wk, bk = featured(1, att.feature_k)
    rows_w = mix.in_proj.weight  # [z | x | B | C | dt]
    rows_b = mix.in_proj.bias
    dt_ = rows_w.dtype
    rows_w[di : 2 * di] = W[:, 2].reshape(di, d).to(dt_)
    rows_b[di : 2 * di] = b[:, 2].reshape(di).to(dt_)
    rows_w[2 * di : 2 * di + H * f] = wk.to(dt_)
    rows_b[2 * di : 2 * di + H * f] = bk.to(dt_)
    rows_w[2 * di + H * f : 2 * di + 2 * H * f] = wq.to(dt_)
    rows_b[2 * di + H * f : 2 * di + 2 * H * f] = bq.to(dt_)
    rows_w[2 * di + 2 * H * f :] = 0.0
    rows_b[2 * di + 2 * H * f :] = 0.0
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

"""Lean one-token decoding steps, the defaults of :func:`attn2mamba.generate`: :class:`MambaStep` for the Mamba
LM and, so that the decoding benchmark compares like with like, :class:`TeacherStep` for the softmax teacher
(a preallocated KV cache).

At batch 1 and small widths decoding is bound by the number of operations launched per token, not by arithmetic.
:meth:`attn2mamba.MambaLM.step` is the general path (any length, padding masks, training-time modules); this one
computes the same function for one token with about a third of the operations:

- everything that does not depend on the token is computed once, when the step is built: ``A = -max(decay, 0)``,
  the convolution kernel as a ``[channels, K]`` matrix, ``1 - gate_mix``;
- the convolution over the ``K``-token window is one dot product per channel (``vecdot``);
- the SiLU blend ``x + x_mix (SiLU(x) - x)`` is one ``lerp``, the gate ``1 + gate_mix (SiLU(z) - 1)`` one
  ``addcmul``, the ``D`` skip another;
- both Hedgehog feature pairs (B and C, every group) are one softmax over ``[u, -u]`` stacked; with rotary
  B/C the rotation is ``u cos + (u J) sin`` (``J``: rotate-half as a matrix, the angles a table row) and the
  per-group maps one batched matmul;
- the ratio normalisation's constant-1 channel enters the state as ``dt`` directly, and the state update is one
  ``baddbmm`` on the decayed state;
- the token ids are not range-checked (the step is fed the model's own samples; ``model.step`` checks);
- the backbone's LayerNorms and GELU MLP are called as functions on their weights (other norms and MLPs, e.g.
  Llama's, through their modules).

:class:`TeacherStep` does the same for the teacher (one fused q, k, v projection for Llama too, rotation as
above, the backbone as above) and keeps keys and values in a buffer that grows by doubling, instead of
concatenating the whole cache every token: writing a token costs the same at any length, attending to the cache
grows with it, as it must.

A step is built from the model's weights at the time (``model.decode_step()``); build a new one after the weights
change. The Mamba step returns a new state and leaves the one it was given untouched; the teacher step writes the
new key and value into the buffer it shares with the state it was given (decode each state once, as
:func:`attn2mamba.generate` does). Both are tested equal to ``model.step`` in float64 (every mixer variant:
``ratio``/``rms``, rotary B/C, grouped B; GPT-NeoX and Llama backbones; left-padded batches;
``tests/test_decoding.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .hedgehog import rms_norm_heads
from .lm import MLP, LMState
from .teacher import KVCache


def _norm(mod: torch.nn.Module):
    """A LayerNorm as a function on its weights (no module call); other norms as they are."""
    if isinstance(mod, torch.nn.LayerNorm):
        shape, w, b, eps = mod.normalized_shape, mod.weight, mod.bias, mod.eps
        return lambda x: torch.layer_norm(x, shape, w, b, eps)
    return mod


def _mlp(mod: torch.nn.Module):
    """GPT-NeoX's MLP as a function on its weights; other MLPs (Llama's gated one) as they are."""
    if isinstance(mod, MLP):
        w1, b1, w2, b2, act = (
            mod.dense_h_to_4h.weight,
            mod.dense_h_to_4h.bias,
            mod.dense_4h_to_h.weight,
            mod.dense_4h_to_h.bias,
            mod.act,
        )
        return lambda x: F.linear(act(F.linear(x, w1, b1)), w2, b2)
    return mod


class _Backbone:
    """Embedding, per-block norms and MLPs, final norm and head of a :class:`attn2mamba.DecoderLM`, as functions."""

    def __init__(self, model):
        self.model = model
        self.parallel = model.config.parallel_residual
        self.norm1 = [_norm(b.input_layernorm) for b in model.blocks]
        self.norm2 = [_norm(b.post_attention_layernorm) for b in model.blocks]
        self.mlp = [_mlp(b.mlp) for b in model.blocks]
        self.final = _norm(model.final_layer_norm)

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        return F.embedding(ids[:, -1], self.model.embed_in.weight)

    def residual(self, i: int, x: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        """The block's output from its input ``x`` and its mixer's output ``a``."""
        if self.parallel:
            return x + a + self.mlp[i](self.norm2[i](x))
        x = x + a
        return x + self.mlp[i](self.norm2[i](x))

    def head(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(self.final(x), self.model.embed_out.weight)[:, None]


class _Rotation:
    """Rotary embedding of one token as ``u cos + (u J) sin`` over whole heads: ``J`` is rotate-half as a matrix on
    the first ``rotary.dim`` channels, ``cos`` is 1 and ``sin`` 0 on the channels after them."""

    def __init__(self, rotary, head_dim: int, like: torch.Tensor):
        self.rotary, self.P, self.r = rotary, head_dim, rotary.dim
        r, half = rotary.dim, torch.arange(rotary.dim // 2, device=like.device)
        J = torch.zeros(head_dim, head_dim, dtype=like.dtype, device=like.device)
        J[half + r // 2, half] = -1
        J[half, half + r // 2] = 1
        self.J = J
        self.tables: tuple[torch.Tensor, torch.Tensor] | None = None

    def rows(self, pos) -> tuple[torch.Tensor, torch.Tensor]:
        """cos and sin of position ``pos`` (an int, or ``[b]`` per row: shaped ``[b, 1, P]``)."""
        end = (int(pos.max()) if isinstance(pos, torch.Tensor) else pos) + 1
        if self.tables is None or self.tables[0].shape[0] < end:
            cos, sin = self.rotary.table(end, self.J.device)
            c = torch.ones(cos.shape[0], self.P, dtype=self.J.dtype, device=self.J.device)
            s = torch.zeros_like(c)
            c[:, : self.r], s[:, : self.r] = cos.to(c.dtype), sin.to(s.dtype)
            self.tables = (c, s)
        c, s = self.tables
        if isinstance(pos, torch.Tensor):
            idx = pos.clamp_min(0)
            return c[idx][:, None], s[idx][:, None]
        return c[pos], s[pos]

    def __call__(self, u: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        return torch.addcmul(u * cos, u @ self.J, sin)


@dataclass
class _MambaLayer:
    mixer: torch.nn.Module
    w_in: torch.Tensor
    b_in: torch.Tensor | None
    w_conv: torch.Tensor  # [conv_dim, K]
    b_conv: torch.Tensor
    x_mix: torch.Tensor
    gate_mix: torch.Tensor
    gate_rest: torch.Tensor  # 1 - gate_mix
    dt_bias: torch.Tensor
    A: torch.Tensor
    D: torch.Tensor  # [H, 1]
    w_out: torch.Tensor
    b_out: torch.Tensor | None
    w_feat: torch.Tensor | None = None  # rotary B/C: the B and C maps stacked, [Gb + G, P, f]
    b_feat: torch.Tensor | None = None  # [Gb + G, 1, f]
    sizes: tuple = ()  # in_proj's split: z, xbc, dt
    xbc_sizes: tuple = ()  # the convolution's output split: x, [b, c]


class MambaStep:
    """``step(ids [b, 1], state) -> (logits [b, 1, vocab], new state)`` for a :class:`attn2mamba.MambaLM`, with
    the same state (:class:`attn2mamba.lm.LMState` of :class:`attn2mamba.mamba.MambaState`) as ``model.step``."""

    def __init__(self, model):
        self.model, self.mc = model, model.mamba
        mc = self.mc
        self.backbone = _Backbone(model)
        self.layers = []
        p = next(model.parameters())
        self.cast = cast = p.dtype not in (torch.float32, torch.float64)  # half precision: dt, decay wider
        with torch.no_grad():
            for block in model.blocks:
                m = block.mixer
                b_in = m.in_proj.bias.clone()
                if not cast:  # dt_raw + dt_bias in one: the bias of the dt rows (half precision: added wider)
                    b_in[-mc.num_heads :] += m.dt_bias
                layer = _MambaLayer(
                    mixer=m,
                    w_in=m.in_proj.weight,
                    b_in=b_in,
                    w_conv=m.conv1d.weight[:, 0].clone(),
                    b_conv=m.conv1d.bias.clone(),
                    x_mix=m.x_mix.clone(),
                    gate_mix=m.gate_mix.clone(),
                    gate_rest=1 - m.gate_mix,
                    dt_bias=m.dt_bias.clone(),
                    A=m.A.clone(),
                    D=m.D[:, None].clone(),
                    w_out=m.out_proj.weight,
                    b_out=m.out_proj.bias,
                )
                layer.sizes = (m.d_inner, m.conv_dim, mc.num_heads)
                layer.xbc_sizes = (m.d_inner, m.conv_dim - m.d_inner)
                if mc.rotary_dim:
                    layer.w_feat = torch.cat((m.feature_b.weight, m.feature_c.weight))
                    layer.b_feat = torch.cat((m.feature_b.bias, m.feature_c.bias))[:, None]
                self.layers.append(layer)
        self.H, self.P, self.G, self.Gb = mc.num_heads, mc.head_dim, mc.num_groups, mc.num_b_groups
        self.d_inner = self.H * self.P
        self.ratio = mc.normalize == "ratio"
        p = next(model.parameters())
        self.rotation = _Rotation(model.blocks[0].mixer.rotary, self.P, p) if mc.rotary_dim else None

    @torch.no_grad()
    def __call__(self, ids: torch.Tensor, state: LMState) -> tuple[torch.Tensor, LMState]:
        # written for few interpreter steps per operation: methods rather than indexing, no dtype casts when the
        # model computes in float32 or float64 (bf16/fp16 models take the cast branch)
        mc, bb = self.mc, self.backbone
        H, P, G, Gb, di, f = self.H, self.P, self.G, self.Gb, self.d_inner, mc.feature_dim
        x = bb.embed(ids)  # [b, d]
        b = x.shape[0]
        bH = b * H
        if self.rotation is not None:
            cos, sin = self.rotation.rows(state.positions())
        cast = self.cast
        new_layers = []
        for i, (layer, s) in enumerate(zip(self.layers, state.layers)):
            proj = F.linear(bb.norm1[i](x), layer.w_in, layer.b_in)  # dt_bias is in b_in's dt rows
            z, xbc, dt = proj.split_with_sizes(layer.sizes, -1)
            conv = s.conv.to(xbc.dtype) if cast else s.conv
            window = torch.cat((conv, xbc.unsqueeze(-1)), -1)  # [b, conv_dim, K]
            xbc = torch.linalg.vecdot(window, layer.w_conv).add_(layer.b_conv)
            xs, bc = xbc.split_with_sizes(layer.xbc_sizes, -1)
            xs = torch.lerp(xs, F.silu(xs), layer.x_mix)
            if self.rotation is not None:  # rotate b, c at this position, then each group's map: u W + bias
                u = self.rotation(bc.view(b, Gb + G, P), cos, sin)
                u = torch.baddbmm(layer.b_feat, u.transpose(0, 1), layer.w_feat).transpose(0, 1)
                u = u.reshape(b, Gb + G, 1, f)
            else:
                u = bc.view(b, Gb + G, 1, f)
            feats = torch.cat((u, u.neg()), 2).softmax(-1).view(b, Gb + G, 2 * f)
            Bm, Cm = feats.narrow(1, 0, Gb), feats.narrow(1, Gb, G)
            if Gb != H:
                Bm = Bm.repeat_interleave(H // Gb, dim=1)
            if G != H:
                Cm = Cm.repeat_interleave(H // G, dim=1)
            if cast:  # dt and the decay in float32 at least, as the training path
                acc = torch.promote_types(dt.dtype, torch.float32)
                dt = F.softplus(dt.to(acc) + layer.dt_bias.to(acc))
                decay = torch.exp(dt * layer.A.to(acc)).to(s.ssm.dtype)
            else:
                dt = F.softplus(dt)  # [b, H]
                decay = torch.exp(dt * layer.A)
            xh = xs.view(b, H, P)
            dt1 = dt.unsqueeze(-1)
            xdt = xh * dt1
            if self.ratio:  # the constant-1 channel of x, times dt
                xdt = torch.cat((xdt, dt1.to(xdt.dtype) if cast else dt1), -1)
            P1, N = s.ssm.shape[-2], s.ssm.shape[-1]
            if cast:
                xdt, Bm, Cm = xdt.to(s.ssm.dtype), Bm.to(s.ssm.dtype), Cm.to(s.ssm.dtype)
            ssm = torch.baddbmm(
                (s.ssm.view(bH, P1, N) * decay.view(bH, 1, 1)),
                xdt.reshape(bH, P1, 1),
                Bm.reshape(bH, 1, N),
            )
            y = torch.bmm(ssm, Cm.reshape(bH, N, 1)).view(b, H, P1)
            if self.ratio:
                y = y.narrow(-1, 0, P) / (y.narrow(-1, P, 1) + mc.ratio_eps)
            y = torch.addcmul(y, xh, layer.D.to(y.dtype) if cast else layer.D)
            g = torch.addcmul(layer.gate_rest, layer.gate_mix, F.silu(z))
            y = y.view(b, di) * g
            if mc.normalize == "rms":
                y = rms_norm_heads(y.view(b, H, P), layer.mixer.norm_weight, mc.norm_eps).reshape(b, di)
            x = bb.residual(i, x, F.linear(y, layer.w_out, layer.b_out))
            new_layers.append(type(s)(window.narrow(-1, 1, window.shape[-1] - 1), ssm.view(b, H, P1, N)))
        return bb.head(x), LMState(state.pos + 1, new_layers, state.offset)


@dataclass
class StaticKV(KVCache):
    """A KV cache in buffers of ``capacity`` positions, of which the first ``length`` are filled (``k, v [b,
    kv_heads, capacity, P]``, ``valid [b, capacity]`` after a left-padded prompt). ``model.step`` takes it as the
    :class:`attn2mamba.teacher.KVCache` of its filled part."""

    length: int = 0

    def filled(self) -> KVCache:
        n = self.length
        return KVCache(self.k[:, :, :n], self.v[:, :, :n], None if self.valid is None else self.valid[:, :n])


def _static(cache: KVCache, extra: int) -> StaticKV:
    """``cache`` copied into buffers with room for at least ``extra`` more positions (doubling)."""
    if isinstance(cache, StaticKV) and cache.length + extra <= cache.k.shape[2]:
        return cache
    if isinstance(cache, StaticKV):
        cache = cache.filled()
    n = cache.k.shape[2]
    cap = max(2 * n, n + extra, 64)
    b, h, _, P = cache.k.shape
    k = cache.k.new_empty(b, h, cap, P)
    v = cache.v.new_empty(b, h, cap, P)
    k[:, :, :n], v[:, :, :n] = cache.k, cache.v
    valid = None
    if cache.valid is not None:
        valid = torch.ones(b, cap, dtype=torch.bool, device=cache.valid.device)
        valid[:, :n] = cache.valid
    return StaticKV(k, v, valid, n)


@dataclass
class _AttnLayer:
    w_qkv: torch.Tensor  # rows: q (heads x P), k, v (kv_heads x P each)
    b_qkv: torch.Tensor | None
    w_out: torch.Tensor
    b_out: torch.Tensor | None


class TeacherStep:
    """``step(ids [b, 1], state) -> (logits [b, 1, vocab], new state)`` for the softmax teacher
    (:class:`attn2mamba.GPTNeoX`, :class:`attn2mamba.llama.Llama`): one fused q, k, v projection, the rotation as
    a table row, and a :class:`StaticKV` cache written in place."""

    def __init__(self, model):
        self.model, self.cfg = model, model.config
        cfg = self.cfg
        self.backbone = _Backbone(model)
        self.H, self.Hk, self.P = cfg.num_heads, cfg.kv_heads, cfg.head_dim
        H, Hk, P = self.H, self.Hk, self.P
        self.layers = []
        with torch.no_grad():
            for block in model.blocks:
                attn = block.mixer
                (wq, bq), (wk, bk), (wv, bv) = attn.qkv_weights()  # [n, P, d], [n, P]
                has_bias = cfg.attention_bias
                self.layers.append(
                    _AttnLayer(
                        w_qkv=torch.cat(
                            (wq.reshape(H * P, -1), wk.reshape(Hk * P, -1), wv.reshape(Hk * P, -1))
                        ),
                        b_qkv=torch.cat((bq.reshape(-1), bk.reshape(-1), bv.reshape(-1)))
                        if has_bias
                        else None,
                        w_out=attn.dense.weight,
                        b_out=attn.dense.bias,
                    )
                )
        p = next(model.parameters())
        self.rotation = _Rotation(model.blocks[0].mixer.rotary, P, p)
        self.scale = P**-0.5
        self.sizes = (H * P, Hk * P, Hk * P)

    @torch.no_grad()
    def __call__(self, ids: torch.Tensor, state: LMState) -> tuple[torch.Tensor, LMState]:
        bb, H, Hk, P = self.backbone, self.H, self.Hk, self.P
        if state.pos + 1 > self.cfg.max_seq_len:
            self.model.check_input(ids, state.pos)  # the one-line length error
        x = bb.embed(ids)
        b = x.shape[0]
        cos, sin = self.rotation.rows(state.positions())
        new_layers = []
        for i, (layer, cache) in enumerate(zip(self.layers, state.layers)):
            qkv = F.linear(bb.norm1[i](x), layer.w_qkv, layer.b_qkv)
            q, k, v = qkv.split_with_sizes(self.sizes, -1)
            q = self.rotation(q.view(b, H, P), cos, sin)
            cache = _static(cache, 1)
            n = cache.length
            cache.k.select(2, n).copy_(self.rotation(k.view(b, Hk, P), cos, sin))
            cache.v.select(2, n).copy_(v.view(b, Hk, P))
            keys, values = cache.k.narrow(2, 0, n + 1), cache.v.narrow(2, 0, n + 1)
            mask = None if cache.valid is None else cache.valid.narrow(1, 0, n + 1).view(b, 1, 1, n + 1)
            o = F.scaled_dot_product_attention(
                q.unsqueeze(2), keys, values, attn_mask=mask, scale=self.scale, enable_gqa=H != Hk
            )
            x = bb.residual(i, x, F.linear(o.reshape(b, H * P), layer.w_out, layer.b_out))
            new_layers.append(StaticKV(cache.k, cache.v, cache.valid, n + 1))
        return bb.head(x), LMState(state.pos + 1, new_layers, state.offset)

"""The teacher: a GPT-NeoX/Pythia causal Transformer with attention through ``scaled_dot_product_attention``.

GPT-NeoX attention (Black et al. 2022, as in Pythia): one fused ``query_key_value`` projection laid out per head as
``[q | k | v]``, rotary position embeddings on the first ``rotary_pct`` of each head's dimensions (the
"rotate-half" form, ``x_rot = x cos + rotate_half(x) sin``), softmax attention with scale ``1/sqrt(head_dim)``,
output projection ``dense``. On CUDA, SDPA dispatches to FlashAttention.

:func:`load_gpt_neox` reads a local Hugging Face GPT-NeoX/Pythia folder (``config.json`` and ``*.safetensors``);
:func:`save_gpt_neox` writes one in the same format. No download ever happens here.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .lm import AttentionProjections, DecoderLM, LMConfig, repeat_kv


class CheckpointError(ValueError):
    """A checkpoint folder that is missing, incomplete or not a GPT-NeoX model."""


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    a, b = x.chunk(2, dim=-1)
    return torch.cat((-b, a), dim=-1)


class Rotary(nn.Module):
    """Rotary embeddings on the first ``dim`` channels of each head (GPT-NeoX's partial rotary)."""

    def __init__(self, dim: int, base: float):
        super().__init__()
        inv = (
            1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.int64).float() / dim))
            if dim
            else torch.zeros(0)
        )
        self.dim = 2 * inv.numel()  # an odd rotary width rounds up, as in GPT-NeoX
        self.base, self.requested = base, dim
        self.register_buffer("inv_freq", inv, persistent=False)

    def table(self, end: int, device) -> tuple[torch.Tensor, torch.Tensor]:
        """``cos, sin [end', dim]`` for positions ``0 .. end' - 1`` (``end' >= end``), computed once and grown by
        doubling: a decoding step reads one row instead of rebuilding its angles. Each row equals what a fresh
        ``arange`` would give (integer positions are exact in float32)."""
        key = (id(self.inv_freq), self.inv_freq.dtype, str(device))
        cached = getattr(self, "_table", None)
        if cached is None or cached[0] != key or cached[1].shape[0] < end:
            size = max(end, 256, 2 * cached[1].shape[0] if cached is not None and cached[0] == key else 0)
            t = torch.arange(size, device=device, dtype=torch.float32)
            freqs = torch.outer(t, self.inv_freq.to(device=device, dtype=torch.float32))
            emb = torch.cat((freqs, freqs), dim=-1)
            cached = (key, emb.cos(), emb.sin())
            self._table = cached
        return cached[1], cached[2]

    def forward(self, q: torch.Tensor, k: torch.Tensor, pos) -> tuple[torch.Tensor, torch.Tensor]:
        """Rotate ``q, k [batch, heads, L, head_dim]`` at positions ``pos, pos + 1, ...``; ``pos`` an int, or a
        tensor ``[batch]`` of per-row positions (a left-padded batch; negative ones, the padding, take 0)."""
        if self.dim == 0:
            return q, k
        L = q.shape[-2]
        if isinstance(pos, torch.Tensor):
            idx = (pos[:, None] + torch.arange(L, device=pos.device)).clamp_min(0)  # [batch, L]
            cos, sin = self.table(int(idx.max()) + 1, q.device)
            cos, sin = cos[idx][:, None].to(q.dtype), sin[idx][:, None].to(q.dtype)  # [batch, 1, L, dim]
        else:
            cos, sin = self.table(pos + L, q.device)
            cos, sin = cos[pos : pos + L].to(q.dtype), sin[pos : pos + L].to(q.dtype)

        def rot(x: torch.Tensor) -> torch.Tensor:
            xr, xp = x[..., : self.dim], x[..., self.dim :]
            return torch.cat((xr * cos + rotate_half(xr) * sin, xp), dim=-1)

        return rot(q), rot(k)


@dataclass
class KVCache:
    k: torch.Tensor | None = None  # [batch, kv_heads, length, head_dim]
    v: torch.Tensor | None = None
    valid: torch.Tensor | None = None  # [batch, length] after a left-padded prompt: False for padding keys

    def filled(self) -> KVCache:
        """The cache of the positions consumed so far (itself; a preallocated
        :class:`attn2mamba.decoding.StaticKV` returns its filled part)."""
        return self


class SoftmaxAttention(AttentionProjections):
    """GPT-NeoX or Llama attention. ``project`` gives the pre-rotary q, k, v ``[batch, heads, length, head_dim]``
    that stage 1 distils from (k, v with ``num_kv_heads`` heads); ``forward`` is the full layer. The KV cache keeps
    the ``num_kv_heads`` heads; each serves ``num_heads / num_kv_heads`` query heads."""

    def __init__(self, cfg: LMConfig):
        super().__init__(cfg)
        self.rotary = Rotary(int(cfg.head_dim * cfg.rotary_pct), cfg.rotary_base)

    def attend(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        pos=0,
        cache: KVCache | None = None,
        mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, KVCache | None]:
        """Rotary + causal softmax attention; returns heads concatenated ``[batch, length, hidden]``. ``mask``
        ``[batch, L]`` (False: left padding) keeps padding keys out of every later query's attention."""
        q, k = self.rotary(q, k, pos)
        if cache is not None:
            cache = cache.filled()
        valid = None
        if mask is not None or (cache is not None and cache.valid is not None):
            new = (
                mask
                if mask is not None
                else torch.ones(q.shape[0], q.shape[2], dtype=torch.bool, device=q.device)
            )
            old = None if cache is None or cache.k is None else cache.valid
            if old is None and cache is not None and cache.k is not None:
                old = torch.ones(q.shape[0], cache.k.shape[2], dtype=torch.bool, device=q.device)
            valid = new if old is None else torch.cat((old, new), dim=1)
        if cache is not None:
            if cache.k is not None:
                k, v = torch.cat((cache.k, k), dim=2), torch.cat((cache.v, v), dim=2)
            cache = KVCache(k, v, valid)
        k, v = repeat_kv(k, self.num_heads), repeat_kv(v, self.num_heads)
        Lq, Lk = q.shape[2], k.shape[2]
        if valid is None and Lq == Lk:
            o = F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=self.head_dim**-0.5)
        else:  # new queries at positions Lk-Lq .. Lk-1 see every cached key up to their own position
            qpos = torch.arange(Lk - Lq, Lk, device=q.device)
            kpos = torch.arange(Lk, device=q.device)
            allowed = kpos[None, :] <= qpos[:, None]
            if valid is not None:  # padding keys are seen by no query but their own (no empty softmax rows)
                allowed = allowed & (valid[:, None, None, :] | (kpos[None, :] == qpos[:, None]))
            o = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed, scale=self.head_dim**-0.5)
        b = q.shape[0]
        return o.transpose(1, 2).reshape(b, Lq, -1), cache

    def weights(self, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        """Causal softmax attention weights ``[batch, heads, L, L]`` (for the stage-1 cross-entropy loss)."""
        q, k = self.rotary(q, k, 0)
        s = (q @ repeat_kv(k, self.num_heads).transpose(-1, -2)).float() * self.head_dim**-0.5
        L = s.shape[-1]
        mask = torch.ones(L, L, dtype=torch.bool, device=s.device).triu(1)
        return s.masked_fill(mask, float("-inf")).softmax(-1)

    def forward(self, h: torch.Tensor, state: KVCache | None = None, pos=0, mask: torch.Tensor | None = None):
        q, k, v = self.project(h)
        o, state = self.attend(q, k, v, pos, state, mask)
        return self.dense(o), state

    def init_state(self, batch: int, device=None, dtype=None) -> KVCache:
        return KVCache()


class GPTNeoX(DecoderLM):
    """The teacher: GPT-NeoX / Pythia (or, with ``cfg.arch="llama"``, a Llama: :class:`attn2mamba.llama.Llama`).
    ``GPTNeoX(cfg)`` builds it randomly initialised; :func:`load_gpt_neox` loads a local checkpoint folder,
    :func:`load_teacher` either kind."""

    kind = "gpt-neox"

    def __init__(self, cfg: LMConfig):
        super().__init__(cfg, [SoftmaxAttention(cfg) for _ in range(cfg.num_layers)])

    def decode_step(self):
        """The lean one-token step with a preallocated KV cache (:class:`attn2mamba.decoding.TeacherStep`)."""
        from .decoding import TeacherStep

        return TeacherStep(self)

    @torch.no_grad()
    def attention_io(self, ids: torch.Tensor, *, weights: bool = False) -> tuple[list[dict], torch.Tensor]:
        """One teacher pass that records, per layer, the pre-rotary ``q, k, v`` (k, v with ``num_kv_heads`` heads) and the attention layer's output
        (after ``dense``), plus the softmax weights if asked; returns ``(records, logits)``. Stage 1 trains
        every layer on these teacher inputs, in parallel."""
        self.check_input(ids)
        x = self.embed_in(ids.long())
        records = []
        for block in self.blocks:
            attn: SoftmaxAttention = block.mixer
            h = block.input_layernorm(x)
            q, k, v = attn.project(h)
            o, _ = attn.attend(q, k, v)
            a = attn.dense(o)
            rec = {"q": q, "k": k, "v": v, "out": a}
            if weights:
                rec["weights"] = attn.weights(q, k)
            records.append(rec)
            if block.parallel:
                x = x + a + block.mlp(block.post_attention_layernorm(x))
            else:
                x = x + a
                x = x + block.mlp(block.post_attention_layernorm(x))
        return records, self.embed_out(self.final_layer_norm(x))


# -- Hugging Face GPT-NeoX checkpoints -------------------------------------------------------------------------

_IGNORED = ("attention.bias", "attention.masked_bias", "rotary_emb.inv_freq")


def load_teacher(path: str | Path, **kw) -> GPTNeoX:
    """A teacher from a local Hugging Face folder: GPT-NeoX/Pythia (:func:`load_gpt_neox`) or Llama
    (:func:`attn2mamba.llama.load_llama`), chosen by ``config.json``'s ``model_type``."""
    folder = Path(path)
    cfg_path = folder / "config.json"
    if folder.is_dir() and cfg_path.is_file():
        try:
            kind = json.loads(cfg_path.read_text()).get("model_type")
        except json.JSONDecodeError as e:
            raise CheckpointError(f"{cfg_path} does not parse: {e}") from None
        if kind == "llama":
            from .llama import load_llama

            return load_llama(folder, **kw)
    return load_gpt_neox(folder, **kw)


def config_from_hf(d: dict) -> LMConfig:
    """An :class:`LMConfig` from a Hugging Face GPT-NeoX ``config.json`` (old ``rotary_pct`` keys or the newer
    ``rope_parameters``)."""
    if d.get("model_type", "gpt_neox") != "gpt_neox":
        raise CheckpointError(f"config.json describes a {d.get('model_type')!r} model, not gpt_neox")
    rope = d.get("rope_parameters") or d.get("rope_scaling") or {}
    if rope.get("rope_type", rope.get("type", "default")) not in ("default", None):
        raise CheckpointError(f"rope type {rope.get('rope_type', rope.get('type'))!r} is not supported")
    try:
        return LMConfig(
            vocab_size=int(d["vocab_size"]),
            hidden_size=int(d["hidden_size"]),
            num_layers=int(d["num_hidden_layers"]),
            num_heads=int(d["num_attention_heads"]),
            intermediate_size=int(d["intermediate_size"]),
            rotary_pct=float(rope.get("partial_rotary_factor", d.get("rotary_pct", 0.25))),
            rotary_base=float(rope.get("rope_theta", d.get("rotary_emb_base", d.get("rope_theta", 10000.0)))),
            max_seq_len=int(d.get("max_position_embeddings", 2048)),
            layer_norm_eps=float(d.get("layer_norm_eps", 1e-5)),
            parallel_residual=bool(d.get("use_parallel_residual", True)),
            hidden_act=str(d.get("hidden_act", "gelu")),
            tie_embeddings=bool(d.get("tie_word_embeddings", False)),
            attention_bias=bool(d.get("attention_bias", True)),
        )
    except KeyError as e:
        raise CheckpointError(f"config.json lacks {e.args[0]!r}") from None
    except ValueError as e:
        raise CheckpointError(f"config.json: {e}") from None


def config_to_hf(cfg: LMConfig) -> dict:
    return {
        "architectures": ["GPTNeoXForCausalLM"],
        "model_type": "gpt_neox",
        "vocab_size": cfg.vocab_size,
        "hidden_size": cfg.hidden_size,
        "num_hidden_layers": cfg.num_layers,
        "num_attention_heads": cfg.num_heads,
        "intermediate_size": cfg.intermediate_size,
        "rotary_pct": cfg.rotary_pct,
        "rotary_emb_base": cfg.rotary_base,
        "max_position_embeddings": cfg.max_seq_len,
        "layer_norm_eps": cfg.layer_norm_eps,
        "use_parallel_residual": cfg.parallel_residual,
        "hidden_act": cfg.hidden_act,
        "tie_word_embeddings": cfg.tie_embeddings,
        "attention_bias": cfg.attention_bias,
        "torch_dtype": "float32",
    }


def _hf_to_ours(key: str) -> str | None:
    if key.endswith(_IGNORED):
        return None
    if key.startswith("gpt_neox."):
        key = key[len("gpt_neox.") :]
    key = key.replace("layers.", "blocks.", 1) if key.startswith("layers.") else key
    return key.replace(".attention.", ".mixer.")


def _ours_to_hf(key: str) -> str:
    if key.startswith("embed_out."):
        return key
    key = key.replace(".mixer.", ".attention.")
    key = key.replace("blocks.", "layers.", 1) if key.startswith("blocks.") else key
    return "gpt_neox." + key


def _safetensors_files(folder: Path) -> list[Path]:
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        names = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        missing = [n for n in names if not (folder / n).is_file()]
        if missing:
            raise CheckpointError(f"{folder}: shard {missing[0]} named in {index.name} is missing")
        return [folder / n for n in names]
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        extra = (
            " (only pytorch_model.bin: convert it to safetensors)"
            if (folder / "pytorch_model.bin").exists()
            else ""
        )
        raise CheckpointError(f"{folder} holds no *.safetensors weights{extra}")
    return files


def load_gpt_neox(
    path: str | Path, *, dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu"
) -> GPTNeoX:
    """Load a GPT-NeoX/Pythia model from a local folder with ``config.json`` and ``*.safetensors`` (one file or
    shards with ``model.safetensors.index.json``). Raises :class:`CheckpointError` with a one-line reason."""
    return load_hf_folder(
        path, "GPT-NeoX/Pythia", config_from_hf, GPTNeoX, _hf_to_ours, dtype=dtype, device=device
    )


def load_hf_folder(
    path: str | Path,
    family: str,
    config_from: Callable[[dict], LMConfig],
    model_cls: type,
    key_map: Callable[[str], str | None],
    *,
    dtype: torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
):
    """A Hugging Face checkpoint folder as ``model_cls``: ``config.json`` through ``config_from``, every
    safetensors file's keys through ``key_map`` (None: not ours), built on the meta device and filled once.
    Every problem is a one-line :class:`CheckpointError` naming ``family``."""
    from safetensors import safe_open

    folder = Path(path)
    if not folder.is_dir():
        raise CheckpointError(f"teacher checkpoint folder {folder} does not exist")
    cfg_path = folder / "config.json"
    if not cfg_path.is_file():
        raise CheckpointError(f"{folder} has no config.json (expected a {family} checkpoint folder)")
    try:
        cfg = config_from(json.loads(cfg_path.read_text()))
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{cfg_path} does not parse: {e}") from None
    with torch.device("meta"):
        model = model_cls(cfg)
    expected = set(model.state_dict())
    if cfg.tie_embeddings:
        expected.discard("embed_out.weight")
    state: dict[str, torch.Tensor] = {}
    for f in _safetensors_files(folder):
        try:
            with safe_open(str(f), framework="pt") as sf:
                for key in sf.keys():  # noqa: SIM118 (safe_open has no __iter__)
                    ours = key_map(key)
                    if ours is not None:
                        state[ours] = sf.get_tensor(key).to(dtype)
        except Exception as e:  # safetensors raises its own error types
            raise CheckpointError(f"cannot read {f}: {str(e).splitlines()[0]}") from None
    if cfg.tie_embeddings:
        state.pop("embed_out.weight", None)
    missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
    if missing:
        raise CheckpointError(f"{folder}: weights missing from the checkpoint, e.g. {missing[0]}")
    if unexpected:
        raise CheckpointError(f"{folder}: unexpected weights in the checkpoint, e.g. {unexpected[0]}")
    model = model.to_empty(device=device)
    model.load_state_dict(state, strict=not cfg.tie_embeddings)
    if cfg.tie_embeddings:
        model.embed_out.weight = model.embed_in.weight
    for block in model.blocks:  # non-persistent buffers were on the meta device
        r = block.mixer.rotary
        d = r.requested
        r.inv_freq = 1.0 / (cfg.rotary_base ** (torch.arange(0, d, 2, device=device).float() / d))
    return model.to(dtype)


def save_gpt_neox(model: GPTNeoX, path: str | Path) -> Path:
    """Write ``model`` as a Hugging Face GPT-NeoX folder (``config.json`` + ``model.safetensors``)."""
    from safetensors.torch import save_file

    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    sd = {_ours_to_hf(k): v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    if model.config.tie_embeddings:
        sd.pop("embed_out.weight", None)
    save_file(sd, str(folder / "model.safetensors"), metadata={"format": "pt"})
    (folder / "config.json").write_text(json.dumps(config_to_hf(model.config), indent=2) + "\n")
    return folder


# -- the trainer's teacher phase ----------------------------------------------------------------------------------


def teacher_phase(ctx):
    """The trainer's phase ``teacher`` (``ctx``: :class:`attn2mamba.context.Context`): the ``--teacher`` folder,
    evaluated, or a tiny GPT-NeoX trained here on the corpus and written as a GPT-NeoX folder; returns
    ``(model, result)``."""
    from .loop import adamw, train_loop

    cfg, run, env = ctx.cfg, ctx.run, ctx.env
    if ctx.loaded_teacher is not None:
        teacher = ctx.loaded_teacher.eval().requires_grad_(False)
        res = run.phase(
            "teacher",
            lambda: {
                "source": cfg.teacher,
                **ctx.final(teacher),
                "curve_ppl": ctx.ppl(teacher, ctx.curve_windows),
            },
        )
        return teacher, res

    trained: dict = {}

    def build():
        torch.manual_seed(cfg.seed)
        m = GPTNeoX(ctx.lm_config())
        m.init_weights()
        return m.to(env.device)

    def train() -> dict:
        from . import parallel

        model = build()
        wrapped = parallel.wrap(model, env, "ddp")
        opt = adamw([{"params": list(model.parameters())}], cfg.teacher_lr, cfg.teacher_weight_decay)

        def loss_fn(mb):
            logits = wrapped(mb[:, :-1])
            return F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), mb[:, 1:].reshape(-1))

        curve = train_loop(
            ctx,
            "teacher",
            1,
            model=wrapped,
            opt=opt,
            steps=cfg.teacher_steps,
            lr=cfg.teacher_lr,
            loss_fn=loss_fn,
            evaluate=lambda: ctx.ppl(model, ctx.curve_windows),
            token_offset=0,
            trainable=list(model.parameters()),
            manual_sync=False,
        )
        if run.is_main:
            save_gpt_neox(model, run.out / "teacher")
        trained["model"] = model
        return {
            "source": "trained here",
            "steps": cfg.teacher_steps,
            "tokens": cfg.teacher_steps * ctx.tokens_per_step,
            "params": model.num_params(),
            "curve": curve,
            **ctx.final(model),
            "curve_ppl": curve[-1]["ppl"],
        }

    res = run.phase("teacher", train)
    teacher = trained.get("model")
    if teacher is None:  # finished before a --resume: from its final checkpoint
        teacher = build()
        _, weights, _ = run.checkpoint("teacher").load(restore_rng=False)
        teacher.load_state_dict(weights["model"])
    return teacher.eval().requires_grad_(False), res

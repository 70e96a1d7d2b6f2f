"""``uv run --package attn2mamba train``: Transformer -> Hedgehog linear attention -> Mamba, with claims.

Phases (each resumable; a finished phase is not redone on ``--resume``):

1. ``teacher``: train a tiny GPT-NeoX on the corpus (or load ``--teacher DIR``, a GPT-NeoX/Pythia or Llama folder).
2. ``stage1@0``: the stage-1 model with untrained (identity) feature maps, the control arm's starting point.
3. Per student seed ``s`` (``--seeds``):
   - ``stage1@F-sS``: Hedgehog feature maps fitted for ``F * student_tokens`` tokens (layer-wise terms and/or
     the end-to-end KL, ``--stage1-*``);
   - ``stage2@F-sS``: the stage-1 model mapped into a Mamba (step 0 equals stage 1), then trained on everything
     with cross-entropy + ``kl_weight`` KL to the teacher for the remaining ``(1 - F) * student_tokens``;
   - ``control-sS``: the same stage 2, on the same batches, from the *untrained* stage-1 maps (a zero-step
     stage 1): what the teacher's copied weights give without stage 1;
   - ``naive-sS``: the same Mamba from random initialisation, same loss, all ``student_tokens`` tokens.

Train, validation and test splits are disjoint (:func:`attn2mamba.data.split_documents`); curves and
hyperparameter choices use validation, the claims use test. ``--stage1-frac 0.05,0.1,0.25,0.5`` sweeps the split
(the claims use the first value).
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from pathlib import Path

from paperkit import BaseConfig, ConfigError, Run, knob, run_trainer

PACKAGE = "attn2mamba"


@dataclass
class Config(BaseConfig):
    # data
    data: str = knob(
        "", "a text file, a folder of text files, or a .npy of token ids; empty: pydoc_data.topics"
    )
    tokenizer: str = knob(
        "bytes",
        "bytes (vocabulary 256) or teacher (the --teacher folder's tokenizer.json)",
        choices=("bytes", "teacher"),
    )
    val_fraction: float = knob(
        0.1,
        "validation fraction of the corpus (whole documents; curves, choices)",
        low=0,
        low_open=True,
        high=0.4,
    )
    test_fraction: float = knob(
        0.1, "test fraction of the corpus (whole documents; the claims)", low=0, low_open=True, high=0.4
    )
    seq_len: int = knob(128, "training and evaluation sequence length (tokens)", low=2)
    batch_size: int = knob(32, "global batch in sequences (split over torchrun ranks)", low=1)
    micro_batch: int = knob(
        0, "sequences per forward pass on each rank (gradient accumulation); 0: all", low=0
    )
    # teacher
    teacher: str = knob(
        "",
        "GPT-NeoX/Pythia or Llama folder (config.json + *.safetensors; model_type picks the loader); "
        "empty: train a tiny GPT-NeoX here",
    )
    hidden_size: int = knob(64, "tiny teacher: width", low=8)
    num_layers: int = knob(4, "tiny teacher: layers", low=1)
    num_heads: int = knob(4, "tiny teacher: attention heads", low=1)
    intermediate_size: int = knob(256, "tiny teacher: MLP width", low=1)
    rotary_pct: float = knob(
        0.25, "tiny teacher: fraction of each head with rotary embeddings (Pythia's)", low=0, high=1
    )
    teacher_steps: int = knob(1000, "tiny teacher: training steps", low=1)
    teacher_lr: float = knob(3e-3, "tiny teacher: AdamW peak learning rate", low=0, low_open=True)
    teacher_weight_decay: float = knob(0.1, "tiny teacher: AdamW weight decay on matrices", low=0)
    # stage 1
    feature_dim: int = knob(16, "Hedgehog feature dim f per map (2f features; the Mamba state size)", low=1)
    normalize: str = knob(
        "ratio",
        "linear-attention normalisation: rms (per-head RMSNorm) or ratio (softmax-style denominator)",
        choices=("rms", "ratio"),
    )
    feature_init: str = knob("identity", "Hedgehog map init", choices=("identity", "kaiming"))
    stage1_cosine: float = knob(
        0.0, "stage-1 loss weight: 1 - cosine(student, teacher) attention outputs (layer-wise)", low=0
    )
    stage1_mse: float = knob(
        0.0, "stage-1 loss weight: relative MSE of attention outputs (layer-wise)", low=0
    )
    stage1_xent: float = knob(
        0.0, "stage-1 loss weight: cross-entropy of attention weights (Hedgehog's)", low=0
    )
    stage1_kl: float = knob(
        1.0, "stage-1 loss weight: end-to-end KL(teacher || stage-1 model) of the next-token logits", low=0
    )
    stage1_rotary: bool = knob(
        False, "feature maps on the teacher's rotary-embedded q, k (the Mamba then rotates B and C)"
    )
    stage1_lr: float = knob(
        1e-2, "stage-1 Adam learning rate (feature maps and norm gains)", low=0, low_open=True
    )
    # budget and stage 2
    student_tokens: int = knob(
        327_680, "distillation tokens: stage 1 + stage 2, and the naive baseline's whole budget", low=1
    )
    stage1_frac: tuple[float, ...] = knob(
        (0.125,),
        "fraction of student_tokens for stage 1; several values sweep the split (claims: the first)",
        low=0,
        high=1,
    )
    stage2_lr: float = knob(3e-3, "stage-2 AdamW peak learning rate", low=0, low_open=True)
    release_lr_mult: float = knob(
        10.0,
        "stage 2: learning-rate factor for the released mixer parameters (decay, dt, conv, SiLU/gate mixes, D)",
        low=0,
        low_open=True,
    )
    seeds: int = knob(3, "student seeds (stage 1, stage 2, control, naive per seed; one teacher)", low=1)
    control: bool = knob(
        True, "also train the control: stage 2 from untrained stage-1 maps, same batches and stage-2 tokens"
    )
    naive: bool = knob(True, "also train the naive baseline (random-init Mamba, same loss and tokens)")
    naive_lr: float = knob(3e-3, "naive baseline: AdamW peak learning rate", low=0, low_open=True)
    kl_weight: float = knob(
        1.0, "stage 2 and naive: weight of KL(teacher || student); 0 = cross-entropy only", low=0
    )
    kl_temperature: float = knob(1.0, "temperature of the KL term", low=0, low_open=True)
    warmup_frac: float = knob(
        0.05, "linear warm-up fraction of each phase (then cosine to 10%)", low=0, high=1
    )
    grad_clip: float = knob(1.0, "gradient-norm clip (0: off)", low=0)
    conv_kernel: int = knob(4, "Mamba conv1d kernel", low=1)
    chunk_size: int = knob(64, "chunk length of the linear-attention and SSD scans", low=1)
    use_kernels: str = knob(
        "auto", "auto: mamba-ssm/causal-conv1d on CUDA if installed; torch: never", choices=("auto", "torch")
    )
    parallel: str = knob(
        "ddp",
        "under torchrun: ddp, or fsdp (fully_shard) for stage 2 and the baseline",
        choices=("ddp", "fsdp"),
    )
    # evaluation
    eval_windows: int = knob(256, "test (and validation) windows for the final perplexities", low=1)
    curve_windows: int = knob(48, "validation windows per point of the perplexity curves", low=1)
    curve_points: int = knob(4, "evaluations per phase for the curves", low=1)
    sample_tokens: int = knob(120, "tokens sampled from every model at the end (0: none)", low=0)

    def check(self) -> None:
        if self.teacher:
            p = Path(self.teacher)
            if not p.is_dir():
                raise ConfigError(f"--teacher {self.teacher}: teacher checkpoint folder does not exist")
            if not (p / "config.json").is_file():
                raise ConfigError(
                    f"--teacher {self.teacher}: no config.json there (expected a GPT-NeoX or Llama folder)"
                )
        if self.data and not Path(self.data).exists():
            raise ConfigError(f"--data {self.data} does not exist")
        if self.hidden_size % self.num_heads:
            raise ConfigError(
                f"--hidden-size {self.hidden_size} is not divisible by --num-heads {self.num_heads}"
            )
        if not self.stage1_frac:
            raise ConfigError("--stage1-frac needs at least one value")
        if self.stage1_cosine + self.stage1_mse + self.stage1_xent + self.stage1_kl <= 0:
            raise ConfigError(
                "stage 1 needs a loss: set --stage1-cosine, --stage1-mse, --stage1-xent or --stage1-kl above 0"
            )
        if self.micro_batch and self.batch_size % self.micro_batch:
            raise ConfigError(
                f"--batch-size {self.batch_size} is not divisible by --micro-batch {self.micro_batch}"
            )


PRESETS = {
    "smoke": dict(
        hidden_size=32,
        num_layers=2,
        num_heads=2,
        intermediate_size=64,
        seq_len=48,
        batch_size=8,
        teacher_steps=30,
        feature_dim=8,
        stage1_frac=(0.25,),
        student_tokens=8 * 48 * 24,
        eval_windows=16,
        curve_windows=8,
        curve_points=2,
        sample_tokens=16,
        checkpoint_every=10,
        threads=1,
        seeds=2,
    ),
    # one torch thread: these models gain little from a second, and on a shared CPU two threads stall badly
    "default": dict(threads=1),
    "paper": dict(
        tokenizer="teacher",
        seq_len=2048,
        batch_size=256,
        micro_batch=4,
        student_tokens=10_000_000_000,
        stage1_frac=(0.25,),
        seeds=1,
        control=False,
        feature_dim=64,
        stage1_lr=1e-2,
        stage2_lr=2e-4,
        release_lr_mult=10.0,
        naive=False,
        kl_weight=1.0,
        warmup_frac=0.01,
        parallel="fsdp",
        eval_windows=512,
        curve_windows=64,
        curve_points=20,
        sample_tokens=200,
        checkpoint_every=250,
    ),
}


# -- helpers ---------------------------------------------------------------------------------------------------


def _lr_factor(step: int, total: int, warmup_frac: float) -> float:
    """Linear warm-up, then cosine from 1 to 0.1."""
    warm = int(round(warmup_frac * total))
    if warm and step < warm:
        return (step + 1) / warm
    t = (step - warm) / max(1, total - warm)
    return 0.1 + 0.45 * (1 + math.cos(math.pi * min(1.0, t)))


def _curve_steps(total: int, points: int) -> set[int]:
    """Steps after which to evaluate: ``points`` evenly spaced, the last one at ``total``."""
    return {max(1, round(total * (i + 1) / points)) for i in range(points)}


class _Ctx:
    """What every phase needs: config, run, distributed env, data, evaluation windows."""

    def __init__(self, cfg: Config, run: Run):
        import torch
        from paperkit.device import autocast
        from paperkit.distributed import init

        from .data import DataError, check_vocab, eval_windows, load_corpus, make_tokenizer
        from .teacher import CheckpointError

        self.cfg, self.run = cfg, run
        self.env = init(cfg.device)
        if cfg.batch_size % self.env.world_size:
            raise ConfigError(
                f"--batch-size {cfg.batch_size} is not divisible by {self.env.world_size} ranks"
            )
        self.per_rank = cfg.batch_size // self.env.world_size
        self.micro = cfg.micro_batch or self.per_rank
        if self.per_rank % self.micro:
            raise ConfigError(
                f"per-rank batch {self.per_rank} is not divisible by --micro-batch {self.micro}"
            )
        self.autocast = lambda: autocast(self.env.device)
        try:
            self.tokenizer = make_tokenizer(cfg.tokenizer, cfg.teacher or None)
            self.loaded_teacher = None
            if cfg.teacher:
                from .teacher import load_teacher

                self.loaded_teacher = load_teacher(cfg.teacher, device=self.env.device)
                tcfg = self.loaded_teacher.config
                check_vocab(self.tokenizer, tcfg.vocab_size)
                if cfg.seq_len > tcfg.max_seq_len:
                    raise ConfigError(
                        f"--seq-len {cfg.seq_len} is longer than the teacher's limit of {tcfg.max_seq_len}"
                    )
            self.corpus = load_corpus(
                cfg.data,
                self.tokenizer,
                val_fraction=cfg.val_fraction,
                test_fraction=cfg.test_fraction,
                seed=cfg.seed,
                min_tokens=cfg.seq_len + 1,
            )
        except (DataError, CheckpointError) as e:
            raise ConfigError(str(e)) from None
        self.final_windows = eval_windows(self.corpus.test, cfg.seq_len, cfg.eval_windows)  # claims
        self.val_windows = eval_windows(self.corpus.val, cfg.seq_len, cfg.eval_windows)  # choices
        self.curve_windows = eval_windows(self.corpus.val, cfg.seq_len, cfg.curve_windows)
        self.tokens_per_step = cfg.batch_size * cfg.seq_len
        self.total_steps = max(1, round(cfg.student_tokens / self.tokens_per_step))
        self.torch = torch

    def lm_config(self):
        from .lm import LMConfig

        if self.loaded_teacher is not None:
            return self.loaded_teacher.config
        cfg = self.cfg
        return LMConfig(
            vocab_size=self.tokenizer.vocab_size,
            hidden_size=cfg.hidden_size,
            num_layers=cfg.num_layers,
            num_heads=cfg.num_heads,
            intermediate_size=cfg.intermediate_size,
            rotary_pct=cfg.rotary_pct,
            max_seq_len=max(cfg.seq_len, 256),
        )

    def batch(self, phase_id: int, step: int, seed: int = 0):
        """This rank's share of the global batch of step ``step`` of student seed ``seed`` (the same windows
        whatever the world size)."""
        from paperkit.device import step_generator
        from paperkit.distributed import rank_slice

        from .data import sample_batch

        g = step_generator(self.cfg.seed, phase_id, step, *((1000 + seed,) if seed else ()))
        full = sample_batch(self.corpus.train, self.cfg.batch_size, self.cfg.seq_len, g)
        return rank_slice(full, self.env).to(self.env.device)

    def ppl(self, model, windows) -> float:
        from .data import perplexity

        return perplexity(model, windows, batch=self.micro, device=self.env.device, autocast=self.autocast)

    def final(self, model) -> dict:
        """Test perplexity (the claims) and validation perplexity (the choices)."""
        return {"ppl": self.ppl(model, self.final_windows), "val_ppl": self.ppl(model, self.val_windows)}


def _adamw(params_groups, lr: float, weight_decay: float):
    import torch

    groups = []
    for g in params_groups:
        decay = [p for p in g["params"] if p.dim() >= 2]
        flat = [p for p in g["params"] if p.dim() < 2]
        mult = g.get("lr_mult", 1.0)
        if decay:
            groups.append({"params": decay, "weight_decay": weight_decay, "lr_mult": mult})
        if flat:
            groups.append({"params": flat, "weight_decay": 0.0, "lr_mult": mult})
    return torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.95))


def _train_loop(
    ctx: _Ctx,
    key: str,
    phase_id: int,
    *,
    model,
    opt,
    steps: int,
    lr: float,
    loss_fn,
    evaluate,
    token_offset: int,
    trainable: list,
    manual_sync: bool,
    mode: str = "ddp",
    seed: int = 0,
) -> list[dict]:
    """The step loop shared by every phase: lr schedule, micro-batches, clipping, curve points, checkpoints."""
    import torch

    from . import parallel

    cfg, run, env = ctx.cfg, ctx.run, ctx.env
    ckpt = run.checkpoint(key)
    curve: list[dict] = []
    running: list[float] = []  # losses since the last curve point
    start = 0
    if ckpt.exists():
        _, weights, state = ckpt.load()
        parallel.load_model_state(model, weights["model"], env, mode)
        parallel.load_optim_state(model, opt, state["optimizer"], env, mode)
        start, curve, running = int(state["step"]), list(state["curve"]), list(state["running"])

    def trainable_state() -> dict:
        full = parallel.model_state(model, env, mode)
        names = {n for n, p in parallel.base(model).named_parameters() if p.requires_grad}
        return {k: v for k, v in full.items() if k in names}

    def save(done: int) -> None:
        weights = trainable_state()
        optim = parallel.optim_state(model, opt, env, mode)
        ckpt.save(done, {"model": weights}, {"optimizer": optim, "curve": curve, "running": running})

    if start == 0:
        point = {"phase": key, "step": 0, "tokens": token_offset, "ppl": evaluate()}
        curve.append(point)
        run.log(**point)
    evals = _curve_steps(steps, cfg.curve_points)
    n_micro = ctx.per_rank // ctx.micro
    for step in run.steps(steps, start=start, desc=key, save=save):
        f = _lr_factor(step, steps, cfg.warmup_frac)
        for g in opt.param_groups:
            g["lr"] = lr * f * g.get("lr_mult", 1.0)
        batch = ctx.batch(phase_id, step, seed)
        total = 0.0
        for i in range(n_micro):
            mb = batch[i * ctx.micro : (i + 1) * ctx.micro]
            sync = contextlib.nullcontext()
            if hasattr(model, "no_sync") and i < n_micro - 1:
                sync = model.no_sync()
            with sync:
                with ctx.autocast():
                    loss = loss_fn(mb)
                (loss / n_micro).backward()
            total += loss.detach().float() / n_micro
        from paperkit.distributed import all_reduce_mean

        value = all_reduce_mean(total).item()
        run.check_finite(value, where=f"{key} step {step}")
        if manual_sync:
            parallel.allreduce_grads(trainable)
        if cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_(trainable, cfg.grad_clip)
        opt.step()
        opt.zero_grad(set_to_none=True)
        running.append(value)
        done = step + 1
        if done in evals:
            point = {
                "phase": key,
                "step": done,
                "tokens": token_offset + done * ctx.tokens_per_step,
                "loss": sum(running) / len(running),
                "lr": lr * f,
                "ppl": evaluate(),
            }
            running.clear()
            curve.append(point)
            run.log(**point)
    save(steps)
    return curve


# -- phases ------------------------------------------------------------------------------------------------------


def _teacher(ctx: _Ctx):
    """The teacher, trained here (phase ``teacher``) or loaded; returns ``(model, result)``."""
    import torch
    import torch.nn.functional as F

    from .teacher import GPTNeoX, save_gpt_neox

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
        opt = _adamw([{"params": list(model.parameters())}], cfg.teacher_lr, cfg.teacher_weight_decay)

        def loss_fn(mb):
            logits = wrapped(mb[:, :-1])
            return F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), mb[:, 1:].reshape(-1))

        curve = _train_loop(
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


def _hedgehog_config(cfg: Config):
    from .hedgehog import HedgehogConfig

    return HedgehogConfig(
        feature_dim=cfg.feature_dim,
        normalize=cfg.normalize,
        feature_init=cfg.feature_init,
        rotary=cfg.stage1_rotary,
        chunk_size=cfg.chunk_size,
    )


def _stage1(ctx: _Ctx, teacher, frac: float, idx: int, seed: int):
    """Phase ``stage1@frac-sSEED`` (``stage1@0`` for the untrained maps): fit the feature maps; returns
    ``(stage-1 model, result)``."""
    from .hedgehog import HedgehogLM, Stage1Loss, stage1_loss

    cfg, run = ctx.cfg, ctx.run
    steps = int(round(frac * ctx.total_steps))
    key = f"stage1@{frac:g}-s{seed}" if steps else "stage1@0"

    def build():
        m = HedgehogLM.from_teacher(teacher, _hedgehog_config(cfg))
        m.requires_grad_(False)
        for p in m.stage1_parameters():
            p.requires_grad_(True)
        return m

    weights = Stage1Loss(cfg.stage1_cosine, cfg.stage1_mse, cfg.stage1_xent, cfg.stage1_kl)
    trained: dict = {}

    def train() -> dict:
        import torch

        model = build()
        params = model.stage1_parameters()
        opt = torch.optim.Adam(params, lr=cfg.stage1_lr)

        def loss_fn(mb):
            x = mb[:, :-1]
            records, t_logits = teacher.attention_io(x, weights=cfg.stage1_xent > 0)
            return stage1_loss(model, records, weights, ids=x, teacher_logits=t_logits)[0]

        if steps == 0:
            ctx.run.checkpoint(key).save(
                0, {"model": {n: p for n, p in model.named_parameters() if p.requires_grad}}
            )
            curve = [{"phase": key, "step": 0, "tokens": 0, "ppl": ctx.ppl(model, ctx.curve_windows)}]
        else:
            curve = _train_loop(
                ctx,
                key,
                10 + 2 * idx,
                model=model,
                opt=opt,
                steps=steps,
                lr=cfg.stage1_lr,
                loss_fn=loss_fn,
                evaluate=lambda: ctx.ppl(model, ctx.curve_windows),
                token_offset=0,
                trainable=params,
                manual_sync=True,
                seed=seed,
            )
        trained["model"] = model
        return {"steps": steps, "tokens": steps * ctx.tokens_per_step, "curve": curve, **ctx.final(model)}

    res = run.phase(key, train)
    model = trained.get("model")
    if model is None:
        model = build()
        _, w, _ = run.checkpoint(key).load(restore_rng=False)
        model.load_state_dict(w["model"], strict=False)
    return model.eval(), res


def _mamba_config(cfg: Config, lm=None):
    from .mamba import MambaConfig

    rotary = int(lm.head_dim * lm.rotary_pct) if (cfg.stage1_rotary and lm is not None) else 0
    return MambaConfig(
        feature_dim=cfg.feature_dim,
        normalize=cfg.normalize,
        conv_kernel=cfg.conv_kernel,
        chunk_size=cfg.chunk_size,
        use_kernels=cfg.use_kernels,
        rotary_dim=rotary,
        rotary_base=lm.rotary_base if lm is not None else 10000.0,
        num_b_groups=lm.kv_heads if lm is not None else None,  # a GQA teacher's shared keys: grouped B
    )


RELEASED = ("decay", "dt_bias", "x_mix", "gate_mix", ".D", "conv1d")


def _distill(
    ctx: _Ctx,
    teacher,
    key: str,
    phase_id: int,
    build,
    *,
    steps: int,
    lr: float,
    offset: int,
    release_mult: float,
    seed: int = 0,
) -> dict:
    """Stage 2 or the naive baseline: train every parameter of a Mamba LM with CE + KL to the teacher."""
    import torch

    from . import parallel
    from .losses import distill_loss

    cfg, run, env = ctx.cfg, ctx.run, ctx.env

    def train() -> dict:
        model = build()
        start_ppl = ctx.ppl(model, ctx.final_windows)
        start_val_ppl = ctx.ppl(model, ctx.val_windows)
        wrapped = parallel.wrap(model, env, cfg.parallel)
        released = [p for n, p in model.named_parameters() if any(r in n for r in RELEASED)]
        ids = {id(p) for p in released}
        rest = [p for p in model.parameters() if id(p) not in ids]
        opt = _adamw([{"params": rest}, {"params": released, "lr_mult": release_mult}], lr, 0.0)

        def loss_fn(mb):
            x, y = mb[:, :-1], mb[:, 1:]
            t_logits = None
            if cfg.kl_weight > 0:
                with torch.no_grad():
                    t_logits = teacher(x)
            return distill_loss(
                wrapped(x), y, t_logits, kl_weight=cfg.kl_weight, temperature=cfg.kl_temperature
            )[0]

        evaluated = wrapped if cfg.parallel == "fsdp" else model
        curve = _train_loop(
            ctx,
            key,
            phase_id,
            model=wrapped,
            opt=opt,
            steps=steps,
            lr=lr,
            loss_fn=loss_fn,
            evaluate=lambda: ctx.ppl(evaluated, ctx.curve_windows),
            token_offset=offset,
            trainable=list(model.parameters()),
            manual_sync=False,
            mode=cfg.parallel,
            seed=seed,
        )
        m0 = {}
        base_model = model if not (env.distributed and cfg.parallel == "fsdp") else None
        if base_model is not None:
            mixers = [b.mixer for b in base_model.blocks]
            m0 = {
                "decay_mean": float(sum(m.decay.clamp(min=0).mean().item() for m in mixers) / len(mixers)),
                "x_mix_mean": float(sum(m.x_mix.mean().item() for m in mixers) / len(mixers)),
                "gate_mix_mean": float(sum(m.gate_mix.mean().item() for m in mixers) / len(mixers)),
            }
        return {
            "steps": steps,
            "tokens": steps * ctx.tokens_per_step,
            "start_ppl": start_ppl,
            "start_val_ppl": start_val_ppl,
            "curve": curve,
            **ctx.final(evaluated),
            "released_after": m0,
        }

    res = run.phase(key, train)
    return res


def _figure(ctx: _Ctx, res: dict) -> None:
    from paperkit.plotting import figure

    fracs = ctx.cfg.stage1_frac
    arms = res["arms"]
    fig, axes = figure(2, 1, width=5.2, height=3.6)
    ax = axes[0][0]
    ax.axhline(res["teacher"]["curve_ppl"], color="black", ls="--", lw=1, label="teacher")
    colors = ["tab:blue", "tab:green", "tab:purple", "tab:brown", "tab:olive", "tab:cyan"]
    for i, f in enumerate(fracs):
        c = colors[i % len(colors)]
        s1, s2 = arms[f"stage1@{f:g}"][0], arms[f"stage2@{f:g}"][0]
        ax.plot(*_xy(s1["curve"]), color=c, ls=":", marker=".", label=f"stage 1 (Hedgehog), split {f:g}")
        ax.plot(*_xy(s2["curve"]), color=c, marker="o", ms=3, label=f"two-stage Mamba, split {f:g}")
    if "control" in arms:
        ax.plot(
            *_xy(arms["control"][0]["curve"]),
            color="tab:orange",
            marker="^",
            ms=3,
            label="control: no stage 1",
        )
    if "naive" in arms:
        ax.plot(
            *_xy(arms["naive"][0]["curve"]),
            color="tab:red",
            marker="s",
            ms=3,
            label="naive Mamba (random init)",
        )
    ax.set_yscale("log")
    ax.xaxis.set_major_formatter(lambda v, _: f"{v / 1e6:g}M" if v >= 1e6 else f"{v / 1e3:g}k" if v else "0")
    ax.set_xlabel("distillation tokens")
    ax.set_ylabel(f"validation perplexity ({ctx.cfg.curve_windows} windows)")
    ax.set_title("attn2mamba: perplexity against tokens (seed 0)")
    ax.legend(fontsize=7)
    ax2 = axes[0][1]
    f = f"{fracs[0]:g}"
    names = [
        ("stage1@0", "stage 1, untrained"),
        (f"stage1@{f}", "stage 1, trained"),
        ("control", "Mamba, no stage 1"),
        (f"stage2@{f}", "two-stage Mamba"),
        ("naive", "naive Mamba"),
    ]
    names = [(k, n) for k, n in names if k in arms]
    for j, (k, _) in enumerate(names):
        vals = [a["ppl"] for a in arms[k]]
        ax2.scatter([j] * len(vals), vals, s=12, color="tab:blue")
    ax2.axhline(res["teacher"]["ppl"], color="black", ls="--", lw=1, label="teacher")
    ax2.set_xticks(range(len(names)), [n for _, n in names], rotation=20, fontsize=7)
    ax2.set_yscale("log")
    ax2.set_ylabel("test perplexity (every seed)")
    ax2.set_title("arms over seeds")
    ax2.legend(fontsize=7)
    fig.tight_layout()
    ctx.run.save_figure(fig, "perplexity")


def _xy(curve: list[dict]) -> tuple[list, list]:
    return [p["tokens"] for p in curve], [p["ppl"] for p in curve]


def _samples(ctx: _Ctx, models: dict) -> dict:
    import torch

    from .data import ByteTokenizer
    from .generate import generate

    cfg = ctx.cfg
    if not cfg.sample_tokens or not ctx.run.is_main:
        return {}
    n_prompt = min(32, cfg.seq_len // 2)
    val = ctx.corpus.val
    # start after the first blank line past the first 200 tokens: prose rather than a heading's underline
    start = 0
    if isinstance(ctx.tokenizer, ByteTokenizer) and len(val) > 400:
        blank = (val[200 : -n_prompt - 1] == 10) & (val[201:-n_prompt] == 10)
        hits = blank.nonzero()
        start = 202 + int(hits[0]) if len(hits) else 0
    prompt = val[start : start + n_prompt][None]
    out = {"prompt": ctx.tokenizer.decode(prompt[0].tolist())}
    new = min(cfg.sample_tokens, min(m.config.max_seq_len for m in models.values()) - n_prompt)
    for name, m in models.items():
        g = torch.Generator().manual_seed(cfg.seed)
        ids = generate(m, prompt, new, temperature=0.7, top_k=20, generator=g)
        out[name] = ctx.tokenizer.decode(ids[0, n_prompt:].tolist())
    return out


def body(cfg: Config, run: Run) -> dict:
    import torch
    from paperkit.device import seed_everything
    from paperkit.distributed import shutdown

    from .convert import mamba_from_hedgehog
    from .lm import ModelInputError
    from .mamba import MambaLM

    seed_everything(cfg.seed)
    try:
        ctx = _Ctx(cfg, run)
        teacher, t_res = _teacher(ctx)
        lm = ctx.lm_config()
        res: dict = {
            "data": ctx.corpus.summary(),
            "world_size": ctx.env.world_size,
            "teacher": t_res,
            "arms": {},
            "tokens_per_step": ctx.tokens_per_step,
            "student_steps": ctx.total_steps,
            "seeds": cfg.seeds,
        }
        arms = res["arms"]
        models = {"teacher": teacher}
        s1_zero, s1_zero_res = _stage1(ctx, teacher, 0.0, 0, 0)
        arms["stage1@0"] = [s1_zero_res] * cfg.seeds  # deterministic: the same for every seed

        def from_stage1(s1, seed):
            return lambda: mamba_from_hedgehog(s1, _mamba_config(cfg, lm), seed=cfg.seed + seed).train()

        for seed in range(cfg.seeds):
            for i, frac in enumerate(cfg.stage1_frac):
                s1, s1_res = _stage1(ctx, teacher, frac, i, seed)
                arms.setdefault(f"stage1@{frac:g}", []).append(s1_res)
                s1_steps = s1_res["steps"]
                key = f"stage2@{frac:g}-s{seed}"
                build = from_stage1(s1, seed)
                arms.setdefault(f"stage2@{frac:g}", []).append(
                    _distill(
                        ctx,
                        teacher,
                        key,
                        11 + 2 * i,
                        build,
                        steps=ctx.total_steps - s1_steps,
                        lr=cfg.stage2_lr,
                        offset=s1_steps * ctx.tokens_per_step,
                        release_mult=cfg.release_lr_mult,
                        seed=seed,
                    )
                )
                if i == 0 and seed == 0 and run.is_main and cfg.sample_tokens:
                    models["stage1"] = s1
                    models["mamba"] = _load_mamba(ctx, build, key)
                if i == 0 and cfg.control:  # the same stage 2 (same batches) from untrained maps
                    arms.setdefault("control", []).append(
                        _distill(
                            ctx,
                            teacher,
                            f"control-s{seed}",
                            11,
                            from_stage1(s1_zero, seed),
                            steps=ctx.total_steps - s1_steps,
                            lr=cfg.stage2_lr,
                            offset=s1_steps * ctx.tokens_per_step,
                            release_mult=cfg.release_lr_mult,
                            seed=seed,
                        )
                    )
            if cfg.naive:

                def build_naive(seed=seed):
                    with torch.random.fork_rng(devices=[]):
                        torch.manual_seed(cfg.seed + 1 + seed)
                        m = MambaLM(lm, _mamba_config(cfg, lm))
                        m.init_weights()
                    return m.to(ctx.env.device).train()

                arms.setdefault("naive", []).append(
                    _distill(
                        ctx,
                        teacher,
                        f"naive-s{seed}",
                        3,
                        build_naive,
                        steps=ctx.total_steps,
                        lr=cfg.naive_lr,
                        offset=0,
                        release_mult=1.0,
                        seed=seed,
                    )
                )
                if seed == 0 and run.is_main and cfg.sample_tokens:
                    models["naive"] = _load_mamba(ctx, build_naive, "naive-s0")
        _claims(cfg, run, res)
        if run.is_main:
            _figure(ctx, res)
        res["samples"] = _samples(ctx, models)
    except ModelInputError as e:
        raise ConfigError(str(e)) from None
    finally:
        shutdown()
    return res


def _load_mamba(ctx: _Ctx, build, key: str):
    m = build()
    _, w, _ = ctx.run.checkpoint(key).load(restore_rng=False)
    m.load_state_dict(w["model"])
    return m.eval()


def _claims(cfg: Config, run: Run, res: dict) -> None:
    """Four claims over seeds, each against a control arm measured in this run, on the test split; and the
    exactness of the stage-2 initialisation. Differences are in test cross-entropy (nats per token,
    ``ln perplexity``), paired by seed."""
    f = f"{cfg.stage1_frac[0]:g}"
    arms = res["arms"]
    teacher = res["teacher"]["ppl"]
    ln = lambda arm: [math.log(a["ppl"]) for a in arms[arm]]  # noqa: E731
    mamba = [a["ppl"] for a in arms[f"stage2@{f}"]]
    table = {"teacher": teacher}
    for k, name in (
        ("stage1@0", "stage1_untrained"),
        (f"stage1@{f}", "stage1"),
        (f"stage2@{f}", "mamba"),
        ("control", "mamba_without_stage1"),
        ("naive", "naive"),
    ):
        if k in arms:
            v = [a["ppl"] for a in arms[k]]
            table[name] = {"mean": sum(v) / len(v), "seeds": v}
    res["perplexity"] = table
    n = len(mamba)
    if "control" in arms:
        run.claim_difference(
            "stage1_adds",
            "stage 1 adds to the final Mamba: test cross-entropy of the two-stage Mamba minus that of the same "
            "recipe from untrained (identity) stage-1 maps, equal stage-2 tokens and batches (nats/byte)",
            method=ln(f"stage2@{f}"),
            control=ln("control"),
            control_name="zero-step stage 1",
            op="<",
            threshold=0.0,
        )
    if "naive" in arms:
        run.claim_difference(
            "beats_naive",
            "two-stage Mamba beats a random-init Mamba at equal total tokens: difference of test cross-entropy "
            "(nats/byte)",
            method=ln(f"stage2@{f}"),
            control=ln("naive"),
            control_name="naive (random-init) Mamba",
            op="<",
            threshold=0.0,
        )
        run.claim_over_seeds(
            "mamba_vs_teacher",
            "perplexity(two-stage Mamba) / perplexity(teacher) <= 1.10 on test (paper: 14.11 / 13.86 = 1.018)",
            values=[m / teacher for m in mamba],
            op="<=",
            threshold=1.10,
            control=[a["ppl"] / teacher for a in arms["naive"]],
            control_name="naive Mamba / teacher",
        )
    run.claim_difference(
        "stage1_improves",
        "stage-1 training improves the stage-1 model itself: its test cross-entropy after stage 1 minus with "
        "the untrained maps (nats/byte)",
        method=ln(f"stage1@{f}"),
        control=ln("stage1@0")[:n],
        control_name="untrained maps (step 0)",
        op="<",
        threshold=0.0,
    )
    run.claim(
        "step0_equals_stage1",
        "at step 0 of stage 2 the Mamba model's test perplexity equals stage 1's within 0.5% (max |ratio - 1| "
        "over seeds; exact by construction)",
        max(abs(a["start_ppl"] / b["ppl"] - 1) for a, b in zip(arms[f"stage2@{f}"], arms[f"stage1@{f}"])),
        "<=",
        0.005,
    )


def main(argv: list[str] | None = None) -> int:
    return run_trainer(
        package=PACKAGE,
        config_cls=Config,
        presets=PRESETS,
        body=body,
        argv=argv,
        description="Attention to Mamba (Moudgil et al., arXiv 2604.14191): distil a GPT-NeoX teacher into "
        "Hedgehog linear attention (stage 1), map it into Mamba-2 and distil again (stage 2), against a naive "
        "random-init Mamba at equal tokens.",
    )

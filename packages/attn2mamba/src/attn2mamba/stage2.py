"""Stage 2 of the recipe (and the naive baseline): a Mamba LM, mapped from stage 1
(:func:`attn2mamba.mamba_from_hedgehog`) or randomly initialised, trained on every parameter with cross-entropy plus
KL to the teacher (phases ``stage2@FRAC-sSEED``, ``control-sSEED``, ``naive-sSEED``)."""

from __future__ import annotations

from .config import Config
from .context import Context
from .loop import adamw, train_loop


def mamba_config(cfg: Config, lm=None):
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


def distill(
    ctx: Context,
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
    start: bool = False,
) -> dict:
    """Stage 2 or the naive baseline: train every parameter of a Mamba LM with CE + KL to the teacher. ``start``:
    also measure the test perplexity at step 0 (stage 2's equals stage 1's by construction: a claim checks it;
    the control's equals the untrained stage-1 model's, the naive one's is a random model's: not measured)."""
    import torch

    from . import parallel
    from .losses import distill_loss

    cfg, run, env = ctx.cfg, ctx.run, ctx.env

    def train() -> dict:
        model = build()
        start_ppl = ctx.ppl(model, ctx.final_windows) if start else None
        wrapped = parallel.wrap(model, env, cfg.parallel)
        released = [p for n, p in model.named_parameters() if any(r in n for r in RELEASED)]
        ids = {id(p) for p in released}
        rest = [p for p in model.parameters() if id(p) not in ids]
        opt = adamw([{"params": rest}, {"params": released, "lr_mult": release_mult}], lr, 0.0)

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
        curve = train_loop(
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
            **({"start_ppl": start_ppl} if start else {}),
            "curve": curve,
            **ctx.final(evaluated),
            "released_after": m0,
        }

    res = run.phase(key, train)
    return res


def load_mamba(ctx: Context, build, key: str):
    m = build()
    _, w, _ = ctx.run.checkpoint(key).load(restore_rng=False)
    m.load_state_dict(w["model"])
    return m.eval()


def from_stage1(ctx: Context, s1, seed: int):
    """A builder of stage 2's starting point: ``s1`` mapped into a Mamba that computes the same function."""
    from .convert import mamba_from_hedgehog

    cfg = ctx.cfg
    lm = ctx.lm_config()
    return lambda: mamba_from_hedgehog(s1, mamba_config(cfg, lm), seed=cfg.seed + seed).train()


def stage2(
    ctx: Context, teacher, key: str, phase_id: int, build, *, stage1_steps: int, seed: int, start: bool = True
) -> dict:
    """Phase ``key``: stage 2 from ``build()`` for the tokens stage 1 left (``student_steps - stage1_steps``), on
    the batches of ``phase_id`` (the control shares them with the first split's stage 2); ``start``: measure the
    step-0 test perplexity (the claim that it equals stage 1's)."""
    cfg = ctx.cfg
    return distill(
        ctx,
        teacher,
        key,
        phase_id,
        build,
        steps=ctx.total_steps - stage1_steps,
        lr=cfg.stage2_lr,
        offset=stage1_steps * ctx.tokens_per_step,
        release_mult=cfg.release_lr_mult,
        seed=seed,
        start=start,
    )


def naive_builder(ctx: Context, seed: int):
    """A builder of the naive baseline: the same Mamba, randomly initialised."""
    import torch

    from .mamba import MambaLM

    cfg = ctx.cfg
    lm = ctx.lm_config()

    def build():
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.seed + 1 + seed)
            m = MambaLM(lm, mamba_config(cfg, lm))
            m.init_weights()
        return m.to(ctx.env.device).train()

    return build


def naive(ctx: Context, teacher, seed: int) -> dict:
    """Phase ``naive-sSEED``: the random-init Mamba, same loss, all ``student_tokens``."""
    cfg = ctx.cfg
    return distill(
        ctx,
        teacher,
        f"naive-s{seed}",
        3,
        naive_builder(ctx, seed),
        steps=ctx.total_steps,
        lr=cfg.naive_lr,
        offset=0,
        release_mult=1.0,
        seed=seed,
    )
